"""Helpers shared by the test modules: signing and example bodies, AMQP taps, a fake CSS API."""
