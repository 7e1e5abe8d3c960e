"""Rendering of reports: self-contained HTML (inline CSS, charts as base64 PNG), Markdown and CSV."""
