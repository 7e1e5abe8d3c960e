"""The web console under /ui: server-rendered pages (Jinja2, htmx for the live parts, uPlot charts) on the
enforcement API's own process and API keys. `mount_console` adds it to an app built by enforcement.api.create_app."""

from enforcement.console.routes import ConsoleDeps, mount_console

__all__ = ["ConsoleDeps", "mount_console"]
