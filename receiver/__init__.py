"""Durable receiver for Tencent Cloud CSS (云直播) event callbacks."""

__version__ = "0.1.0"
