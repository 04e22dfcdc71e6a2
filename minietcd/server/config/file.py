"""``--config-file``: etcd's YAML configuration file (embed.ConfigFromFile and
etcdmain.configFromFile). When it is given, it replaces the command line and the environment.

etcd reads the file through sigs.k8s.io/yaml, which turns YAML into JSON, then decodes it into
its Go structs with encoding/json: no scalar coercion, encoding/json's error texts. Keys come
from the flag table's ``yaml`` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from minietcd.errors import ConfigError
from minietcd.server.config.spec import CLUSTER_STATE_NEW, DEFAULT_INITIAL_CLUSTER, FlagSpec, Kind
from minietcd.server.config.table import DEFAULTS, FLAGS, FLAGS_BY_NAME
from minietcd.server.config.values import ParseState, flag_defaults, ns_to_timedelta
from minietcd.server.urls import parse_urls

_JSON_PREFIX: Final = "error unmarshaling JSON: while decoding JSON: json: "

#: Keys etcdmain reads in its second pass over the file (configProxy), not embed.configYAML.
_PROXY_STRUCT_KEYS: Final = frozenset(
    {
        "proxy",
        "discovery-fallback",
        "proxy-failure-wait",
        "proxy-refresh-interval",
        "proxy-dial-timeout",
        "proxy-write-timeout",
        "proxy-read-timeout",
    }
)

_GO_TYPE: Final = {
    Kind.STRING: "string",
    Kind.CHOICE: "string",
    Kind.URLS: "string",
    Kind.CORS: "string",
    Kind.BOOL: "bool",
    Kind.UINT: "uint",
    Kind.UINT32: "uint32",
    Kind.UINT64: "uint64",
    Kind.INT: "int",
    Kind.INT64: "int64",
    Kind.DURATION: "time.Duration",
    Kind.STRINGS: "[]string",
    Kind.UNIQUE_STRINGS: "[]string",
}
_INT_RANGE: Final = {
    Kind.UINT: (0, 2**64 - 1),
    Kind.UINT64: (0, 2**64 - 1),
    Kind.UINT32: (0, 2**32 - 1),
    Kind.INT: (-(2**63), 2**63 - 1),
    Kind.INT64: (-(2**63), 2**63 - 1),
    Kind.DURATION: (-(2**63), 2**63 - 1),
}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _json_number_text(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _match_key(key: str, known: Iterable[str]) -> str | None:
    """encoding/json's field match: exact name first, then case-insensitive."""
    known = list(known)
    if key in known:
        return key
    folded = key.casefold()
    for k in known:
        if k.casefold() == folded:
            return k
    return None


def _from_json(spec: FlagSpec, value: object, where: str) -> Any:
    """Decode one YAML value into a flag's Go field type, with encoding/json's errors.

    sigs.k8s.io/yaml turns the YAML into JSON first; etcd's struct then gets no scalar
    coercion, so ``name: 123`` is an error and durations are integers of nanoseconds.
    """
    # --host-whitelist is a comma-separated string in the file, a string set on the command line.
    kind = Kind.STRING if spec.name == "host-whitelist" else spec.kind
    go_type = _GO_TYPE[kind]

    def mismatch(jt: str) -> ConfigError:
        return ConfigError(
            f"{_JSON_PREFIX}cannot unmarshal {jt} into Go struct field {where} of type {go_type}"
        )

    if kind in (Kind.STRING, Kind.CHOICE, Kind.URLS, Kind.CORS):
        if isinstance(value, bool | int | float | list | dict):
            raise mismatch(_json_type(value))
        return str(value)  # str, or e.g. a YAML timestamp, which yaml.v2 hands over as text
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise mismatch(_json_type(value))
        return value
    if kind in _INT_RANGE:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise mismatch(_json_type(value))
        lo, hi = _INT_RANGE[kind]
        # YAML 1.0 reaches Go as the JSON number 1 (float64 formatting), so it decodes.
        if (isinstance(value, float) and not value.is_integer()) or not lo <= value <= hi:
            raise ConfigError(
                f"{_JSON_PREFIX}cannot unmarshal number {_json_number_text(value)} into Go "
                f"struct field {where} of type {go_type}"
            )
        n = int(value)
        return ns_to_timedelta(n) if kind is Kind.DURATION else n
    if kind in (Kind.STRINGS, Kind.UNIQUE_STRINGS):
        if not isinstance(value, list):
            raise mismatch(_json_type(value))
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(
                    f"{_JSON_PREFIX}cannot unmarshal {_json_type(item)} into Go struct field "
                    f"{where} of type string"
                )
        return tuple(value)
    raise AssertionError(f"unhandled kind {kind}")  # pragma: no cover


def _read_yaml(path: str) -> object:
    try:
        import yaml  # PyYAML: only --config-file needs it
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            f"--config-file {path}: reading YAML needs PyYAML, which is not installed "
            "(pip install PyYAML)"
        ) from None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        why = (e.strerror or str(e)).lower()
        op = "read" if isinstance(e, IsADirectoryError) else "open"
        raise ConfigError(f"{op} {path}: {why}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"error converting YAML to JSON: yaml: {line}{problem}") from None


def load_config_file(path: str) -> ParseState:
    """embed.ConfigFromFile + etcdmain.configFromFile: the file replaces flags and env."""
    doc = _read_yaml(path)
    st = ParseState(flag_defaults())
    v = st.values
    # Defaults that differ when etcd starts from embed.NewConfig() rather than its flags.
    v["auto-compaction-retention"] = ""
    v["auto-compaction-mode"] = ""
    v["enable-grpc-gateway"] = False
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{_JSON_PREFIX}cannot unmarshal {_json_type(doc)} into Go value of type "
            "embed.configYAML"
        )
    mapping: dict[Any, Any] = doc
    v["config-file"] = path
    top: dict[str, FlagSpec] = {}
    nested: dict[str, dict[str, FlagSpec]] = {}
    for spec in FLAGS:
        key = spec.yaml_key
        if key is None or spec.kind is Kind.IGNORED:
            continue
        if "." in key:
            outer, inner = key.split(".", 1)
            nested.setdefault(outer, {})[inner] = spec
        else:
            top[key] = spec
    url_texts: dict[str, str] = {}
    tls_values: dict[str, Any] = {}

    def load(struct: str, keys: Mapping[str, FlagSpec]) -> None:
        for raw_key, value in mapping.items():
            key = _match_key(str(raw_key), [*keys, *(nested if struct == "configYAML" else ())])
            if key is None or value is None:
                continue  # unknown keys are ignored; null leaves the default
            if key in nested:
                if not isinstance(value, dict):
                    raise ConfigError(
                        f"{_JSON_PREFIX}cannot unmarshal {_json_type(value)} into Go struct "
                        f"field {struct}.{key} of type embed.securityConfig"
                    )
                for raw_inner, inner_value in value.items():
                    inner = _match_key(str(raw_inner), nested[key])
                    if inner is None or inner_value is None:
                        continue
                    spec = nested[key][inner]
                    tls_values[spec.name] = _from_json(spec, inner_value, f"{struct}.{key}.{inner}")
                    st.mark(spec.name)
                continue
            spec = keys[key]
            decoded = _from_json(spec, value, f"{struct}.{key}")
            if spec.kind in (Kind.URLS, Kind.CORS) or spec.name == "host-whitelist":
                url_texts[spec.name] = decoded  # parsed below, as etcd does after unmarshalling
            else:
                v[spec.name] = decoded
            st.mark(spec.name)

    load("configYAML", {k: s for k, s in top.items() if k not in _PROXY_STRUCT_KEYS})
    load("configProxy", {k: s for k, s in top.items() if k in _PROXY_STRUCT_KEYS})

    for name, text in url_texts.items():
        if text == "":
            continue
        if name == "cors":
            if text == "*":
                v[name] = ("*",)
                continue
            try:
                v[name] = tuple(sorted({str(u) for u in parse_urls(text)}))
            except ConfigError as e:
                raise ConfigError(f"new UniqueURLs should never fail: {e}") from None
        elif name == "host-whitelist":
            v[name] = tuple(sorted(set(text.split(","))))
        else:
            try:
                v[name] = tuple(parse_urls(text))
            except ConfigError as e:
                # etcd's own message names advertise-client-urls "advertise-peer-urls".
                shown = "advertise-peer-urls" if name == "advertise-client-urls" else name
                raise ConfigError(f"unexpected error setting up {shown}: {e}") from None
    for name, label in (("discovery-fallback", "discovery-fallback flag"), ("proxy", "proxyFlag")):
        spec = FLAGS_BY_NAME[name]
        if v[name] == "" or v[name] not in spec.choices:
            if v[name] != "":
                raise ConfigError(f"unexpected error setting up {label}: invalid value")
            v[name] = DEFAULTS[spec.attr]
    # The TLS sections replace the TLS fields wholesale (copySecurityDetails).
    for spec in FLAGS:
        if spec.yaml_key is not None and "." in spec.yaml_key:
            v[spec.name] = tls_values.get(spec.name, DEFAULTS[spec.attr])
    if (v["discovery"] or v["discovery-srv"]) and v["initial-cluster"] == DEFAULT_INITIAL_CLUSTER:
        v["initial-cluster"] = ""
    if v["initial-cluster-state"] == "":
        v["initial-cluster-state"] = CLUSTER_STATE_NEW
    if v["auto-compaction-retention"] == "":
        v["auto-compaction-retention"] = "0"  # embed.StartEtcd does the same
    return st
