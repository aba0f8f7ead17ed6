"""The job system: the runner, the embedded queue, the Redis queue and its workers, the wire format, the models report."""
