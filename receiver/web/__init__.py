"""The HTTP edge shared by every route: error and API-token middleware, OpenAPI, operations views
(health, readiness, metrics), in-flight tracking, the pending-body budget and the HTTP log filter.
"""
