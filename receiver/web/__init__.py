"""The HTTP edge shared by every route: error and API-token middleware, OpenAPI, operations views
(health, readiness, metrics), in-flight tracking, the pending-body budget, the HTTP log filter and
the connection guard of `receiver serve`.
"""
