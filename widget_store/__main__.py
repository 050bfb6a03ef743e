"""`python -m widget_store` is `widget-store`."""

from .cli import main

main()
