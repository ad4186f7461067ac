"""History: the query parameters, the SQL, the response models, cursors, end reasons and the views
of `/api/events`, `/api/streams` and `/api/sessions`.
"""
