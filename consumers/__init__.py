"""The running processes around the one processing pipeline (``consumers.pipeline``):
the embedded processor loop, partition-parallel workers, the Faust worker's
group member, the outbox and dead-letter relays, replay, and webhook delivery.
What they need of the composition root is declared in ``consumers.ports``."""
