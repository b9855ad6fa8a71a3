"""The customer-360: state, the pure fold, the derived view, and the profile store."""
