"""The API's routers, one module per area; :mod:`tokenmall.api.app` mounts them under /v1."""
