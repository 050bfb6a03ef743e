"""`python -m widget_store` is `widget-store`."""

from .server.cli import main

main()
