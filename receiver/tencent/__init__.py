"""Tencent Cloud API 3.0: registering this receiver with CSS, and reading its stream records.

Layers, each usable and testable on its own (the model is gidgethub's sansio → abc → adapter):

* `signing`: TC3-HMAC-SHA256 as pure functions (no I/O, no clock).
* `client`: `TencentClient`, one raw-request method on a borrowed aiohttp session, the response
  envelope, typed `errors`, retries.
* `actions`: typed wrappers of the callback actions and their data types.
* `streams`: typed wrappers of the stream actions reconciliation reads (push records, live
  streams, main/backup groups) and their documented limits.
* `register`: pure planning (existing state → a diff) and applying it; `autoregister` runs it in
  the background of `receiver serve`.
"""
