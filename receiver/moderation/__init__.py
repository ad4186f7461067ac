"""Moderation: act on moderation callbacks (policy, the durable action record, the executor)."""
