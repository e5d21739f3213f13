"""The operator command ``rollback-watchdog``: one module per subcommand.

``cli`` is the click group; ``options`` holds what every command shares. The
commands decide with the same core as the function and act through the same
edges. ``main.py`` never imports this package.
"""
