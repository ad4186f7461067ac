"""Storage: connecting, migrations, the writer (and its process, fed by typed frames), the stored
row, deduplication keys and event ids. Nothing here knows about HTTP or the broker.
"""
