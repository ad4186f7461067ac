"""The outbox: which stored events are unpublished, the relay that publishes them in storage order,
the AMQP publisher and message envelope, reconnect backoff, their metrics, and replay.
"""
