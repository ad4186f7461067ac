"""Insight into a stream and its audience from Tencent's monitoring APIs: push quality, audience."""
