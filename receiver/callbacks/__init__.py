"""The intake: the callback view, body parsing, the CallbackKey signature check and the ingest
pipeline that hands an accepted callback to storage and answers CSS.
"""
