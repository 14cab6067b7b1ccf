"""The HTTP surface: Starlette routes, eSMS callbacks, and the uvicorn configuration."""
