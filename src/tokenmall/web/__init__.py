"""The operator console (``/console``): server-rendered pages over the same services as the
JSON API, in Chinese first (English with ``?lang=en``).

``install(app)`` adds the pages, their static files (``static/``: the stylesheet, the page
script and the vendored htmx and ECharts, so nothing comes from a CDN) and the handlers that
answer a page's errors as pages.  The pages are left out of the OpenAPI document.
"""

from tokenmall.web.app import install

__all__ = ["install"]
