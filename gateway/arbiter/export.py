"""``gateway export``: the same estate as ``gateway up``, for systemd or supervisord.

Both exports run the programs :func:`gateway.arbiter.plan.build` plans, with
the same argv, so production runs exactly what development runs.

systemd: one unit per program, grouped by ``gateway.target``. The HTTP front
is socket-activated (``gateway-http.socket``, gunicorn reads ``LISTEN_FDS``);
a service with ``listen`` gets a socket unit shared by its instances
(``Sockets=``). Services are templates, one instance per replica
(``gateway-NAME@0.service``). Ordering is ``After=``/``Requires=`` on the broker;
``Restart=on-failure`` with ``StartLimitBurst=``/``StartLimitIntervalSec=`` from
the config; ``KillMode=mixed`` (SIGTERM to the main process, SIGKILL to the
group after ``TimeoutStopSec=``).

supervisord: a complete ``supervisord.conf``. Sockets are owned by supervisord
through ``[fcgi-program:x]`` (passed as fd 0); every program has
``stopasgroup``/``killasgroup`` and a ``priority`` giving the start order::

    files = export("systemd", config, python3="/srv/gw/.venv/bin/python",
                   outdir="/etc/gateway")
    files["gateway-http.socket"]
"""

from __future__ import annotations

import json
import os
import shlex

from gateway.arbiter.plan import Program, build
from gateway.config import GatewayConfig
from gateway.errors import ConfigError

PRIORITY = {"broker": 10, "redis": 15, "http": 20}


def export(kind: str, config: GatewayConfig, python3: str, outdir: str,
           user: str = "") -> dict[str, str]:
    """File name -> text of the exported configuration (and the resolved config JSON)."""
    programs = build(config, python3)
    resolved = os.path.join(outdir, "gateway.json")
    files = {"gateway.json": json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n"}
    if kind == "systemd":
        files.update(systemd(config, programs, resolved, user))
    elif kind == "supervisord":
        files["supervisord.conf"] = supervisord(config, programs, resolved, user)
    else:
        raise ConfigError(f"export: unknown kind {kind!r} (systemd or supervisord)")
    return files


def _argv(p: Program, fd: str) -> list[str]:
    argv = [a.replace("{fd}", fd).replace("{port}", _port(p.listen)) for a in p.argv]
    if "/" in argv[0] and not os.path.isabs(argv[0]):
        argv[0] = os.path.normpath(os.path.join(p.cwd, argv[0]))  # systemd wants it absolute
    return argv


def _env(p: Program, resolved: str) -> dict[str, str]:
    env = dict(p.env)
    if "GATEWAY_CONFIG" in env:
        env["GATEWAY_CONFIG"] = resolved
    return env


def _port(listen: str) -> str:
    return listen.rpartition(":")[2] if listen and not listen.startswith("unix:") else "0"


def _listen_stream(listen: str) -> str:
    return listen[5:] if listen.startswith("unix:") else listen


# -- systemd ----------------------------------------------------------------------------------


def _sd_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def _sd_exec(argv: list[str]) -> str:
    return " ".join(_sd_quote(a) if (set(a) & set(' "\\%;$\'')) or not a else a for a in argv)


def systemd(config: GatewayConfig, programs: list[Program], resolved: str,
            user: str) -> dict[str, str]:
    """Units for every program plus ``gateway.target``."""
    run_dir = config.gateway.run_dir
    files: dict[str, str] = {}
    wants: list[str] = []
    for p in programs:
        unit = f"gateway-{p.name}"
        argv = _argv(p, "3")
        if p.name == "http":
            i = argv.index("--fd")
            del argv[i:i + 2]  # `gateway front` takes the socket from LISTEN_FDS itself
        needs = [f"gateway-{n}.service" for n in p.needs if n != "http"]
        socket_unit = ""
        if p.listen:
            socket_unit = f"{unit}.socket"
            # Instances of a template share the socket through Sockets=; activation
            # itself starts instance 0.
            service = f"{unit}.service" if p.infra else f"{unit}@0.service"
            files[socket_unit] = "\n".join([
                "[Unit]", f"Description=gateway: listening socket of {p.name}",
                "PartOf=gateway.target", "",
                "[Socket]", f"ListenStream={_listen_stream(p.listen)}", "Backlog=2048",
                f"Service={service}", "", "[Install]", "WantedBy=sockets.target", ""])
        lines = ["[Unit]", f"Description=gateway: {p.name}"
                 + (" replica %i" if not p.infra else ""),
                 "PartOf=gateway.target",
                 f"StartLimitBurst={p.burst}", f"StartLimitIntervalSec={p.interval:g}"]
        if needs:
            lines += [f"After={' '.join(needs)}", f"Requires={' '.join(needs)}"]
        if socket_unit:
            lines += [f"After={socket_unit}", f"Requires={socket_unit}"]
        lines += ["", "[Service]", "Type=notify" if p.ready == "notify" else "Type=simple"]
        if p.ready == "notify":
            lines.append("NotifyAccess=all")
        lines += [f"WorkingDirectory={p.cwd}", f"ExecStartPre=/bin/mkdir -p {run_dir}",
                  f"ExecStart={_sd_exec(argv)}"]
        if socket_unit:
            lines.append(f"Sockets={socket_unit}")
        for key, value in sorted(_env(p, resolved).items()):
            lines.append(f"Environment={_sd_quote(f'{key}={value}')}")
        if not p.infra:
            lines.append('Environment="GATEWAY_REPLICA=%i"')
        if user:
            lines.append(f"User={user}")
        lines += ["Restart=on-failure", "RestartSec=0.1s", "KillMode=mixed",
                  "KillSignal=SIGTERM", f"TimeoutStopSec={max(1, int(p.grace))}s",
                  "", "[Install]", "WantedBy=gateway.target", ""]
        if p.infra:
            files[f"{unit}.service"] = "\n".join(lines)
            wants.append(f"{unit}.service")
        else:
            files[f"{unit}@.service"] = "\n".join(lines)
            wants += [f"{unit}@{i}.service" for i in range(p.replicas)]
    wants += [f"gateway-{p.name}.socket" for p in programs if p.listen]
    files["gateway.target"] = "\n".join([
        "[Unit]", "Description=gateway: the whole estate", f"Wants={' '.join(wants)}", "",
        "[Install]", "WantedBy=multi-user.target", ""])
    return files


# -- supervisord ------------------------------------------------------------------------------


def _sv_env(env: dict[str, str]) -> str:
    parts = []
    for key, value in sorted(env.items()):
        escaped = value.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'{key}="{escaped}"')
    return ",".join(parts)


def _sv_command(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv).replace("%", "%%")


def supervisord(config: GatewayConfig, programs: list[Program], resolved: str,
                user: str) -> str:
    """A complete supervisord.conf running the estate in the foreground."""
    run_dir = config.gateway.run_dir
    out = [
        "; written by `gateway export supervisord`; run: supervisord -c THIS_FILE",
        f"; the run dir must exist first: mkdir -p {run_dir}",
        "[supervisord]", "nodaemon=true", f"logfile={run_dir}/supervisord.log",
        f"pidfile={run_dir}/supervisord.pid", f"directory={config.base_dir}",
        "logfile_maxbytes=0", "",
        "[unix_http_server]", f"file={run_dir}/supervisor.sock", "chmod=0700", "",
        "[supervisorctl]", f"serverurl=unix://{run_dir}/supervisor.sock", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
    ]
    for p in programs:
        section = "fcgi-program" if p.listen else "program"
        out.append(f"[{section}:{p.name}]")
        if p.listen:
            listen = p.listen
            out.append("socket=" + (f"unix://{listen[5:]}" if listen.startswith("unix:")
                                    else f"tcp://{listen}"))
            out.append("socket_backlog=2048")
        out += [
            f"command={_sv_command(_argv(p, '0'))}",
            f"directory={p.cwd}",
            f"priority={PRIORITY.get(p.name, 30)}",
            f"numprocs={p.replicas}",
            "process_name=%(program_name)s_%(process_num)d",
            "autostart=true", "autorestart=true", "startsecs=1",
            f"startretries={max(0, p.burst - 1)}",
            "stopsignal=TERM", f"stopwaitsecs={max(1, int(p.grace))}",
            "stopasgroup=true", "killasgroup=true",
            "redirect_stderr=true", "stdout_logfile=/dev/stdout", "stdout_logfile_maxbytes=0",
        ]
        env = _env(p, resolved)
        env["GATEWAY_REPLICA"] = "%(process_num)d"
        out.append("environment=" + _sv_env(env).replace('"%%(process_num)d"',
                                                          '"%(process_num)d"'))
        if user:
            out.append(f"user={user}")
        out.append("")
    # No [group:...]: supervisord would turn grouped fcgi-programs into plain programs
    # and their fd 0 would be a pipe instead of the socket.
    return "\n".join(out)
