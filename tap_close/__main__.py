from tap_close.tap import TapClose

TapClose.cli()
