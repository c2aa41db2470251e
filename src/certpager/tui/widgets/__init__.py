"""Render-only widgets; screens own the state."""
