"""The bodies of the ``gateway`` subcommands, one module per concern.

:mod:`gateway.cli` owns argv, the environment and the config file; it parses
the arguments and hands each command the values it needs. The modules here
render and check what the commands work on::

    from gateway.commands.status import render_status
    print(render_status(control.call(cfg.control_socket, {"cmd": "status"}, 5.0)))
"""
