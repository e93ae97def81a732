"""The API's routers, one module per area; :mod:`tokenmall.api.app` mounts them under /v1."""

# Every router is built with this prefix, so its routes carry their full path and the app
# takes them as they are (see tokenmall.api.app: no included-router layers to match through).
API_PREFIX = "/v1"
