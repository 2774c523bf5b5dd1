"""Swagger UI for the API Manager, from the swagger-ui-bundle package's files (served locally, no CDN)."""

from __future__ import annotations

import json
from pathlib import Path

STATIC_URL = "/api-manager/swagger/static"


def swagger_ui_directory() -> Path:
    """The folder of swagger-ui's built files (swagger-ui-bundle.js, swagger-ui.css, ...)."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def swagger_page(urls: list[dict[str, str]]) -> str:
    """The page: Swagger UI's standalone layout, whose top bar offers every document in `urls` ({url, name})."""
    config = json.dumps({"urls": urls}).replace("<", "\\u003c")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>sofiaflow API Manager</title>
  <link rel="stylesheet" href="{STATIC_URL}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{STATIC_URL}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{STATIC_URL}/swagger-ui-bundle.js"></script>
  <script src="{STATIC_URL}/swagger-ui-standalone-preset.js"></script>
  <script>
    const config = {config};
    window.ui = SwaggerUIBundle({{
      urls: config.urls,
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: config.urls.length ? "StandaloneLayout" : "BaseLayout",
    }});
  </script>
</body>
</html>
"""
