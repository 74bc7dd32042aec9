"""The bundled sample site behind ``clearance demo``: a generated site, its configs, a server.

- :mod:`crawler.demo.site` writes the site (pages, images, the awkward cases) from code.
- :mod:`crawler.demo.config` writes a config directory whose sources point at it.
- :mod:`crawler.demo.server` serves a directory (and programmable routes) on 127.0.0.1.
"""

from __future__ import annotations
