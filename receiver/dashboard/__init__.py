"""The operator's dashboard: a static page served by the receiver, and the one API route it
needed that did not exist (`GET /api/pipeline`, the service's own counters minute by minute).

It sits above the pipeline stages, like `app.py`: the page reads only documented routes, and the
pipeline series reads only the Prometheus registry every stage already counts into.
"""
