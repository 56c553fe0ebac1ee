"""Trusted-publisher policy: which CI identities may sign each package's distributions.

A package index (or anyone who cares about a package) states, per project,
the identities that publish it, in the terms of PyPI's Trusted Publishing
(``pypi/warehouse``, ``docs/user/trusted-publishers``). A signature on one of
the project's distributions by any other identity is what the monitor reports
as ``unexpected_publisher`` (see :mod:`monitor.publisher_watch`).

Policy file (YAML)::

    packages:
      sampleproject:                        # compared after PEP 503 normalisation
        - kind: github
          repository: pypa/sampleproject    # owner/name
          workflow: release.yml             # file name under .github/workflows/
          environment: pypi                 # optional: the GitHub Actions environment
          repository_owner_id: "1234567"    # optional: the owner's numeric id
        - kind: gitlab
          project: group/subgroup/project   # the namespace path
          workflow_filepath: ci/release.yml # path of the pipeline file in the repository
          environment: production           # optional
      internal-tool:
        - kind: identity                    # any other issuer: exact SAN and issuer
          issuer: https://accounts.google.com
          identity: release@example.com

``github`` and ``gitlab`` take an optional ``issuer`` for a staging or
development OIDC issuer (defaults: ``https://token.actions.githubusercontent.com``
and ``https://gitlab.com``); the repository URLs are still ``github.com`` and
``gitlab.com`` ones. Parsing is strict: unknown or missing fields, values that
are not strings, and two entries for one normalised name are errors naming the
file, line and field (``policy.yaml:7: packages.sampleproject[0].workflow: ...``).

Matching reads the Fulcio certificate extensions
(``sigstore/fulcio:docs/oid-info.md``) and follows pypi-attestations'
``GitHubPublisher``/``GitLabPublisher`` policies, which PyPI applies to PEP 740
attestations:

* the issuer is extension ``.1.8`` (or ``.1.1``), compared exactly;
* the Source Repository URI (``.1.12``) is ``https://github.com/<repository>``;
* the Build Config URI (``.1.18``, the workflow that started the run) is
  ``https://github.com/<repository>/.github/workflows/<workflow>@<ref or sha>``
  where the suffix is the certificate's own Source Repository Ref (``.1.14``)
  or Digest (``.1.13``), so ``workflow`` is compared as a whole file name;
  GitLab's is ``https://gitlab.com/<project>//<workflow_filepath>@<ref or sha>``;
* *ours, as PyPI's token exchange does:* ``environment`` (``.1.23``) and
  ``repository_owner_id`` (``.1.17``, which survives an owner's rename) are
  checked when given. Repository, project and environment names are compared
  case-insensitively, because GitHub and GitLab treat them so; workflow paths
  are compared exactly.

A certificate without these extensions (or a bare key) matches no ``github``
or ``gitlab`` publisher. Everything here is pure: no I/O except
:meth:`PublisherPolicy.load` reading its file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from monitor.config_files import read_config_text
from tlog.ca.identity import (
    OID_BUILD_CONFIG_URI,
    OID_DEPLOYMENT_ENVIRONMENT,
    OID_SOURCE_REPOSITORY_DIGEST,
    OID_SOURCE_REPOSITORY_OWNER_IDENTIFIER,
    OID_SOURCE_REPOSITORY_REF,
    OID_SOURCE_REPOSITORY_URI,
)

__all__ = [
    "GITHUB_ISSUER",
    "GITLAB_ISSUER",
    "IDENTITY_OIDS",
    "GitHubPublisher",
    "GitLabPublisher",
    "IdentityPublisher",
    "PolicyError",
    "Publisher",
    "PublisherPolicy",
    "SignerIdentity",
    "distribution_project",
    "normalize_name",
]

GITHUB_ISSUER: Final = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER: Final = "https://gitlab.com"
_GITHUB: Final = "https://github.com/"
_GITLAB: Final = "https://gitlab.com/"

# The certificate extensions a publisher check reads, by the names the alert evidence uses.
_SOURCE_URI: Final = "source_repository_uri"
_CONFIG_URI: Final = "build_config_uri"
_REF: Final = "source_repository_ref"
_DIGEST: Final = "source_repository_digest"
_ENVIRONMENT: Final = "deployment_environment"
_OWNER_ID: Final = "source_repository_owner_identifier"
#: Name -> OID of the Fulcio extensions :class:`SignerIdentity` carries.
IDENTITY_OIDS: Final[Mapping[str, str]] = {
    _SOURCE_URI: OID_SOURCE_REPOSITORY_URI,
    _CONFIG_URI: OID_BUILD_CONFIG_URI,
    _REF: OID_SOURCE_REPOSITORY_REF,
    _DIGEST: OID_SOURCE_REPOSITORY_DIGEST,
    _ENVIRONMENT: OID_DEPLOYMENT_ENVIRONMENT,
    _OWNER_ID: OID_SOURCE_REPOSITORY_OWNER_IDENTIFIER,
}

_MAX_POLICY_BYTES = 4 << 20
# PEP 508 names; PEP 503 normalisation folds runs of these separators.
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_.]+")
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_GITLAB_PROJECT = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_WORKFLOW_SUFFIXES = (".yml", ".yaml")


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; the message names file, line and field."""


# ---------------------------------------------------------------------------
# Names and distribution files.


def normalize_name(name: str) -> str:
    """PEP 503: lowercase, runs of ``-``, ``_`` and ``.`` become one ``-``."""
    return _SEPARATORS.sub("-", name).lower()


def distribution_project(filename: str) -> str | None:
    """The normalised project name of a wheel or sdist file name, or None for other names.

    Wheels (PEP 427, the binary distribution format spec) are
    ``{name}-{version}[-{build}]-{python}-{abi}-{platform}.whl``; sdists
    (PEP 625, and legacy ``.zip``) are ``{name}-{version}.tar.gz``, split at
    the last ``-`` as ``packaging.utils.parse_sdist_filename`` does, so legacy
    names with dashes still parse. A leading path (``dist/…``) is ignored.
    Deliberately lenient about versions and tags: a file that merely *looks*
    like one of the project's distributions is attributed to it, since the
    monitor errs towards reporting.
    """
    base = filename.rsplit("/", 1)[-1]
    lower = base.lower()
    if lower.endswith(".whl"):
        parts = base[: -len(".whl")].split("-")
        if len(parts) not in (5, 6) or not all(parts):
            return None
        name = parts[0]
    else:
        for suffix in (".tar.gz", ".zip"):
            if lower.endswith(suffix):
                stem = base[: -len(suffix)]
                break
        else:
            return None
        name, sep, version = stem.rpartition("-")
        if not sep or not version:
            return None
    if not _PROJECT_NAME.match(name):
        return None
    return normalize_name(name)


# ---------------------------------------------------------------------------
# Identities and publishers.


@dataclass(frozen=True)
class SignerIdentity:
    """Who signed, as the signing certificate says.

    ``sans`` are the certificate's subject alternative names, ``issuer`` its
    OIDC issuer extension, ``extensions`` the text of those of
    :data:`IDENTITY_OIDS` it carries, by name. ``fingerprint`` (SHA-256 of the
    certificate, or of a bare key's SubjectPublicKeyInfo) is for the alert
    only. A bare public key has ``kind`` ``public_key`` and no identity.
    """

    kind: str = "certificate"
    sans: tuple[str, ...] = ()
    issuer: str | None = None
    extensions: Mapping[str, str] = field(default_factory=dict)
    fingerprint: str | None = None

    def ext(self, name: str) -> str | None:
        """The text of extension ``name`` (a key of :data:`IDENTITY_OIDS`), or None."""
        return self.extensions.get(name)


def _casefold_equal(a: str | None, b: str) -> bool:
    return a is not None and a.casefold() == b.casefold()


def _config_uri_matches(uri: str | None, base: str, path: str, middle: str, identity: SignerIdentity) -> bool:
    """``uri == base + path + middle + "@" + suffix`` for the certificate's own ref or
    digest as ``suffix``; ``path`` (the repository) compared case-insensitively."""
    if uri is None or not uri.startswith(base):
        return False
    rest = uri[len(base) :]
    if rest[: len(path)].casefold() != path.casefold():
        return False
    rest = rest[len(path) :]
    suffixes = [s for s in (identity.ext(_REF), identity.ext(_DIGEST)) if s]
    return any(rest == f"{middle}@{s}" for s in suffixes)


@dataclass(frozen=True)
class GitHubPublisher:
    """A GitHub Actions workflow of one repository (PyPI's GitHub trusted publisher)."""

    repository: str
    workflow: str
    environment: str | None = None
    repository_owner_id: str | None = None
    issuer: str = GITHUB_ISSUER
    kind: str = field(default="github", init=False)

    def mismatch(self, identity: SignerIdentity) -> str | None:
        """Why ``identity`` is not this publisher, or None if it is."""
        if identity.issuer != self.issuer:
            return f"issuer {identity.issuer!r} is not {self.issuer!r}"
        source = identity.ext(_SOURCE_URI)
        if not _casefold_equal(source, _GITHUB + self.repository):
            return f"source repository {source!r} is not {_GITHUB + self.repository!r}"
        config = identity.ext(_CONFIG_URI)
        if not _config_uri_matches(config, _GITHUB, self.repository, f"/.github/workflows/{self.workflow}", identity):
            return f"build config {config!r} is not workflow {self.workflow!r} of {self.repository!r} at the signed ref"
        if self.environment is not None:
            env = identity.ext(_ENVIRONMENT)
            if not _casefold_equal(env, self.environment):
                return f"environment {env!r} is not {self.environment!r}"
        if self.repository_owner_id is not None:
            owner_id = identity.ext(_OWNER_ID)
            if owner_id != self.repository_owner_id:
                return f"repository owner id {owner_id!r} is not {self.repository_owner_id!r}"
        return None

    def describe(self) -> dict[str, Any]:
        """The publisher as alert evidence."""
        return _describe(self, ("repository", "workflow", "environment", "repository_owner_id", "issuer"))


@dataclass(frozen=True)
class GitLabPublisher:
    """A GitLab CI/CD pipeline file of one project (PyPI's GitLab trusted publisher)."""

    project: str
    workflow_filepath: str
    environment: str | None = None
    issuer: str = GITLAB_ISSUER
    kind: str = field(default="gitlab", init=False)

    def mismatch(self, identity: SignerIdentity) -> str | None:
        """Why ``identity`` is not this publisher, or None if it is."""
        if identity.issuer != self.issuer:
            return f"issuer {identity.issuer!r} is not {self.issuer!r}"
        source = identity.ext(_SOURCE_URI)
        if not _casefold_equal(source, _GITLAB + self.project):
            return f"source repository {source!r} is not {_GITLAB + self.project!r}"
        config = identity.ext(_CONFIG_URI)
        if not _config_uri_matches(config, _GITLAB, self.project, f"//{self.workflow_filepath}", identity):
            return f"build config {config!r} is not {self.workflow_filepath!r} of {self.project!r} at the signed ref"
        if self.environment is not None:
            env = identity.ext(_ENVIRONMENT)
            if not _casefold_equal(env, self.environment):
                return f"environment {env!r} is not {self.environment!r}"
        return None

    def describe(self) -> dict[str, Any]:
        """The publisher as alert evidence."""
        return _describe(self, ("project", "workflow_filepath", "environment", "issuer"))


@dataclass(frozen=True)
class IdentityPublisher:
    """One exact certificate identity (SAN) from one issuer: e-mail and other OIDC issuers."""

    issuer: str
    identity: str
    kind: str = field(default="identity", init=False)

    def mismatch(self, identity: SignerIdentity) -> str | None:
        """Why ``identity`` is not this publisher, or None if it is."""
        # Fulcio #639: one e-mail address can be asserted by several issuers,
        # so the issuer is part of the identity.
        if identity.issuer != self.issuer:
            return f"issuer {identity.issuer!r} is not {self.issuer!r}"
        if self.identity not in identity.sans:
            return f"identity {list(identity.sans)!r} is not {self.identity!r}"
        return None

    def describe(self) -> dict[str, Any]:
        """The publisher as alert evidence."""
        return _describe(self, ("issuer", "identity"))


Publisher = GitHubPublisher | GitLabPublisher | IdentityPublisher


def _describe(publisher: Publisher, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": publisher.kind}
    for name in names:
        value = getattr(publisher, name)
        if value is not None:
            out[name] = value
    return out


# ---------------------------------------------------------------------------
# The policy.


@dataclass(frozen=True)
class PublisherPolicy:
    """Normalised project name -> its trusted publishers. Build with :meth:`load` or :meth:`from_yaml`."""

    packages: Mapping[str, tuple[Publisher, ...]]
    source: str = "publisher policy"

    def publishers_for(self, project: str) -> tuple[Publisher, ...] | None:
        """The trusted publishers of ``project`` (any spelling), or None if it is not in the policy."""
        return self.packages.get(normalize_name(project))

    def __len__(self) -> int:
        return len(self.packages)

    @classmethod
    def load(cls, path: str | Path) -> PublisherPolicy:
        """Read and parse a policy file; raises :class:`PolicyError`."""
        text = read_config_text(path, what="publisher policy", max_bytes=_MAX_POLICY_BYTES, error=PolicyError)
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "publisher policy") -> PublisherPolicy:
        """Parse policy YAML (see the module docstring); raises :class:`PolicyError`."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise PolicyError(f"{source}: invalid YAML: {exc}") from None
        return cls(_Parser(source).policy(root), source)


# Validators: a message saying what is wrong, or "" when the value is fine.


def _github_repository(value: str) -> str:
    return "" if _GITHUB_REPOSITORY.match(value) else f"{value!r} is not a GitHub repository 'owner/name'"


def _gitlab_project(value: str) -> str:
    return "" if _GITLAB_PROJECT.match(value) else f"{value!r} is not a GitLab project path 'namespace/project'"


def _workflow_file(value: str) -> str:
    if "/" in value:
        return f"{value!r} must be the workflow's file name only (it lives in .github/workflows/)"
    return "" if value.endswith(_WORKFLOW_SUFFIXES) else f"{value!r} must end in .yml or .yaml"


def _workflow_path(value: str) -> str:
    if value.startswith("/") or value.endswith("/"):
        return f"{value!r} must be a path relative to the repository root"
    return "" if value.endswith(_WORKFLOW_SUFFIXES) else f"{value!r} must end in .yml or .yaml"


def _numeric_id(value: str) -> str:
    return "" if value.isascii() and value.isdigit() else f"{value!r} is not a numeric id"


def _url(value: str) -> str:
    return "" if re.match(r"^https?://[^\s/]+", value) else f"{value!r} is not an http(s) URL"


def _any(value: str) -> str:
    return ""


#: kind -> (class, {field: (required, validator)})
_KINDS: Final[dict[str, tuple[type[Any], dict[str, tuple[bool, Callable[[str], str]]]]]] = {
    "github": (
        GitHubPublisher,
        {
            "repository": (True, _github_repository),
            "workflow": (True, _workflow_file),
            "environment": (False, _any),
            "repository_owner_id": (False, _numeric_id),
            "issuer": (False, _url),
        },
    ),
    "gitlab": (
        GitLabPublisher,
        {
            "project": (True, _gitlab_project),
            "workflow_filepath": (True, _workflow_path),
            "environment": (False, _any),
            "issuer": (False, _url),
        },
    ),
    "identity": (IdentityPublisher, {"issuer": (True, _url), "identity": (True, _any)}),
}


# Parsing walks YAML *nodes*, not the constructed objects, so every error can
# name its line, and scalars are read as the text written (``id: 0123`` stays
# "0123"; YAML 1.1 would make ``on``/``yes`` booleans and ``1e3`` a float).


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, node: yaml.Node | None, where: str, message: str) -> PolicyError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return PolicyError(f"{self.source}{line}: {where + ': ' if where else ''}{message}")

    def mapping(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping node; keys must be distinct strings."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, where, f"must be a mapping, not {_node_type(node)}")
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:null":
                raise self.error(key_node, where, "keys must be strings")
            key = str(key_node.value)
            if key in seen:
                raise self.error(key_node, where, f"duplicate key {key!r} (first on line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
            out.append((key, key_node, value_node))
        return out

    def text(self, node: yaml.Node, where: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.error(node, where, f"must be a string, not {_node_type(node)}")
        value = str(node.value).strip()
        if not value:
            raise self.error(node, where, "must not be empty")
        return value

    def policy(self, root: yaml.Node | None) -> dict[str, tuple[Publisher, ...]]:
        if root is None:
            raise self.error(None, "", "the policy is empty; expected a 'packages:' mapping")
        packages_node = None
        for key, key_node, value in self.mapping(root, ""):
            if key != "packages":
                raise self.error(key_node, key, "unknown top-level key (expected 'packages')")
            packages_node = value
        if packages_node is None:
            raise self.error(root, "", "'packages' is required")
        out: dict[str, tuple[Publisher, ...]] = {}
        first_line: dict[str, tuple[str, int]] = {}
        entries = self.mapping(packages_node, "packages")
        if not entries:
            raise self.error(packages_node, "packages", "must name at least one package")
        for name, key_node, value in entries:
            where = f"packages.{name}"
            if not _PROJECT_NAME.match(name):
                raise self.error(key_node, where, f"{name!r} is not a valid project name (PEP 508)")
            normal = normalize_name(name)
            if normal in first_line:
                other, line = first_line[normal]
                raise self.error(key_node, where, f"{name!r} and {other!r} (line {line}) are the same project {normal!r}")
            first_line[normal] = (name, key_node.start_mark.line + 1)
            if not isinstance(value, yaml.SequenceNode):
                raise self.error(value, where, f"must be a list of publishers, not {_node_type(value)}")
            if not value.value:
                raise self.error(value, where, "must list at least one publisher")
            out[normal] = tuple(self.publisher(item, f"{where}[{i}]") for i, item in enumerate(value.value))
        return out

    def publisher(self, node: yaml.Node, where: str) -> Publisher:
        items = self.mapping(node, where)
        values = {key: (key_node, value) for key, key_node, value in items}
        if "kind" not in values:
            raise self.error(node, where, f"'kind' is required (one of: {', '.join(_KINDS)})")
        kind_node = values.pop("kind")[1]
        kind = self.text(kind_node, f"{where}.kind")
        if kind not in _KINDS:
            raise self.error(kind_node, f"{where}.kind", f"unknown kind {kind!r} (expected one of: {', '.join(_KINDS)})")
        cls, fields = _KINDS[kind]
        kwargs: dict[str, str] = {}
        for key, (key_node, value) in values.items():
            if key not in fields:
                raise self.error(key_node, f"{where}.{key}", f"unknown field for kind {kind!r} (expected: {', '.join(fields)})")
            text = self.text(value, f"{where}.{key}")
            problem = fields[key][1](text)
            if problem:
                raise self.error(value, f"{where}.{key}", problem)
            kwargs[key] = text
        missing = [k for k, (required, _check) in fields.items() if required and k not in kwargs]
        if missing:
            raise self.error(node, where, f"kind {kind!r} needs {', '.join(repr(m) for m in missing)}")
        publisher: Publisher = cls(**kwargs)
        return publisher


def _node_type(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "null"
    return "a string"
