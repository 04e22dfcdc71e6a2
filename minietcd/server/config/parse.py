"""``parse_config``: etcd's command line (Go's ``flag`` package) and ``ETCD_*`` environment
(pkg/flags.SetFlagsFromEnv), or its ``--config-file``, into a validated :class:`~.model.Config`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from minietcd.errors import ConfigError
from minietcd.golang import env_conflict_error, env_invalid_value_error, env_var_name, quote
from minietcd.server.config.model import Config
from minietcd.server.config.spec import MAX_QUOTA_BYTES, UsageError
from minietcd.server.config.table import FLAGS, FLAGS_BY_NAME
from minietcd.server.config.validate import update_default_cluster_from_name, validate
from minietcd.server.config.values import ParseState, SetError, flag_defaults, go_flag_bool
from minietcd.server.urls import detect_default_host


def _parse_go_flags(argv: Sequence[str], st: ParseState) -> tuple[bool, list[str]]:
    """Go's ``flag.FlagSet.Parse``. Returns (help requested, remaining positional args)."""
    args = list(argv)
    while args:
        s = args[0]
        if len(s) < 2 or s[0] != "-":
            break
        minuses = 1
        if s[1] == "-":
            minuses = 2
            if len(s) == 2:  # "--" ends the flags
                args.pop(0)
                break
        name = s[minuses:]
        if name == "" or name[0] in "-=":
            raise UsageError(f"bad flag syntax: {s}")
        args.pop(0)
        has_value, value = False, ""
        eq = name.find("=", 1)
        if eq > 0:
            name, value, has_value = name[:eq], name[eq + 1 :], True
        spec = FLAGS_BY_NAME.get(name)
        if spec is None:
            if name in ("help", "h"):
                return True, args
            raise UsageError(f"flag provided but not defined: -{name}")
        if spec.kind.is_bool_flag:
            try:
                st.apply(spec, value if has_value else "true")
            except SetError as e:
                raise UsageError(
                    f"invalid boolean value {quote(value)} for -{name}: {e}"
                ) from None
        else:
            if not has_value and args:
                value, has_value = args.pop(0), True
            if not has_value:
                raise UsageError(f"flag needs an argument: -{name}")
            try:
                st.apply(spec, value)
            except SetError as e:
                raise UsageError(f"invalid value {quote(value)} for flag -{name}: {e}") from None
        st.mark(name)
    return False, args


def _apply_env(env: Mapping[str, str], st: ParseState) -> None:
    """pkg/flags.SetFlagsFromEnv: ETCD_<FLAG> sets each flag the command line left alone."""
    on_cmdline = {env_var_name("ETCD", n) for n in st.explicit}
    used: set[str] = set()
    last_error: str | None = None
    for spec in sorted(FLAGS, key=lambda s: s.name):  # Go's VisitAll order
        key = spec.env_var
        if key in on_cmdline:
            continue
        raw = env.get(key, "")
        if raw == "":
            continue
        used.add(key)
        try:
            if spec.name == "version":
                # etcd sets its print-version flag here but checked it already, so
                # ETCD_VERSION only has to be a valid bool (Docker images often set it to a
                # version string, which real etcd rejects just like this).
                go_flag_bool(raw)
            else:
                st.apply(spec, raw)
        except SetError as e:
            last_error = env_invalid_value_error(raw, key, e)
        st.env_used.append((key, raw))
        st.notices.append(f"recognized and used environment variable {key}={raw}")
        st.mark(spec.name)
    for key, raw in env.items():  # pkg/flags.verifyEnv
        if key in used:
            continue
        if key in on_cmdline:
            raise ConfigError(env_conflict_error(key))
        if key.startswith("ETCD_"):
            st.warnings.append(f"unrecognized environment variable {key}={raw}")
    if last_error is not None:
        raise ConfigError(last_error)


def parse_config(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    default_host: Callable[[], str | None] = detect_default_host,
) -> Config:
    """Parse etcd's command line (without the program name) and ``ETCD_*`` environment.

    Returns at once, unvalidated, with ``help=True`` for ``-h``/``--help`` or ``version=True``
    for ``--version``. Otherwise the result passed every check etcd makes before it starts
    listening. ``default_host`` is consulted only when a listen URL is ``0.0.0.0`` and the
    matching advertise URL was left at its default (etcd then advertises the host's address).
    """
    st = ParseState(flag_defaults())
    wants_help, positional = _parse_go_flags(argv, st)
    if wants_help:
        return Config(help=True)
    if positional:
        raise ConfigError(f"'{positional[0]}' is not a valid flag")
    if st.values["version"]:
        return Config(version=True)

    config_file = st.values["config-file"] or env.get("ETCD_CONFIG_FILE", "")
    if config_file:
        from minietcd.server.config.file import load_config_file  # only with --config-file

        st = load_config_file(config_file)
        st.notices.append(
            f"Loading server configuration from {quote(config_file)}. Other configuration "
            "command line flags and environment variables will be ignored if provided."
        )
    else:
        _apply_env(env, st)
        v = st.values
        may_be_proxy = v["proxy"] != "off" or (v["discovery"] != "" and v["discovery-fallback"] == "proxy")
        missing_ac = (
            "listen-client-urls" in st.explicit and "advertise-client-urls" not in st.explicit
        )
        if missing_ac and not may_be_proxy:
            # Listening somewhere specific but advertising localhost would mislead clients.
            v["advertise-client-urls"] = ()
        if (
            v["discovery"] or v["discovery-srv"] or v["discovery-srv-name"] or v["discovery-endpoints"]
        ) and ("initial-cluster" not in st.explicit):
            v["initial-cluster"] = ""

    validate(st)
    update_default_cluster_from_name(st, default_host)
    v = st.values
    if v["data-dir"] == "":
        v["data-dir"] = f"{v['name']}.etcd"
        st.warnings.append(f"no data-dir provided, using default data-dir ./{v['data-dir']}")
    quota = v["quota-backend-bytes"]
    if quota > MAX_QUOTA_BYTES:
        st.warnings.append(
            f"backend quota {quota} exceeds maximum recommended quota {MAX_QUOTA_BYTES}"
        )

    cfg = Config(
        **{FLAGS_BY_NAME[n].attr: val for n, val in v.items()},
        source="file" if config_file else "flags",
        explicitly_set=frozenset(st.explicit),
        env_used=tuple(st.env_used),
        warnings=tuple(st.warnings),
        notices=tuple(st.notices),
    )
    cfg.auto_compaction()  # etcd refuses a bad retention before it serves anything
    return cfg
