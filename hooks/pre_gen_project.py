"""Validate every cookiecutter answer as data, before anything is written.

A bad answer stops generation with one line that names the answer and what is
wrong; cookiecutter then removes the half-created project directory.  The
checks are plain functions so the template's tests can call them directly.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

CHOICES = {
    "python_version": ("3.11", "3.12", "3.13"),
    "license": ("MIT", "BSD-3-Clause", "Apache-2.0", "Proprietary"),
    "ci": ("github", "gitlab", "none"),
    "remote": ("none", "local", "s3", "gcs", "azure"),
}
SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
# Names a generated package must not shadow: the project's own dependencies
# and the directories every project has.
RESERVED_PACKAGES = frozenset(
    {
        "dvc", "fairlearn", "fastapi", "matplotlib", "nbval", "numpy", "pandas",
        "pandera", "papermill", "pyarrow", "pytest", "scipy", "sklearn", "skops",
        "uvicorn", "yaml", "data", "models", "notebooks", "reports", "src", "tests",
    }
)
MAX_TEXT = 200
# Free text lands in JSON, TOML, YAML and notebooks: keep out what would need escaping there.
FORBIDDEN_CHARACTERS = ('"', "\\", "{", "}", "`")
# DVC remote URLs by storage: bucket (or container) names as the providers allow them,
# then an optional path. The URL lands unquoted in .dvc/config (an INI file).
REMOTE_URL_RE = {
    "s3": re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/[^\s]*)?$"),
    "gcs": re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](?:/[^\s]*)?$"),
    "azure": re.compile(r"^azure://[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}(?:/[^\s]*)?$"),
}
REMOTE_URL_EXAMPLES = {
    "s3": "s3://bucket/path",
    "gcs": "gs://bucket/path",
    "azure": "azure://container/path",
    "local": "../storage or /mnt/dvc-storage",
}
REMOTE_FORBIDDEN_CHARACTERS = (*FORBIDDEN_CHARACTERS, "'", "#", ";")
# cookiecutter.json derives project_slug from project_name, falling back to this placeholder
# when the name has no letters or digits: an empty slug would make cookiecutter take the
# output directory itself for the project's and stop before this hook runs, with a message
# that names neither the answer nor the problem. The placeholder is no valid slug (nor,
# with '-' replaced, package name), so the checks below see it and name the cause.
UNDERIVABLE_SLUG = "_"


def check_text(name: str, value: str) -> str | None:
    if not value.strip():
        return f"{name} is empty"
    if len(value) > MAX_TEXT:
        return f"{name} is {len(value)} characters long; at most {MAX_TEXT} are allowed"
    if any(ord(ch) < 32 for ch in value):
        return f"{name} {value!r} contains a newline or control character"
    if any(ch in value for ch in FORBIDDEN_CHARACTERS):
        return f"{name} {value!r} contains a quote, backslash or brace, which the generated files cannot hold"
    return None


def check_slug(value: str, name: str) -> str | None:
    if value == UNDERIVABLE_SLUG:
        return (
            f"project_name {name!r} has no letters or digits to derive project_slug from: "
            "give a name with some, or a project_slug"
        )
    if not SLUG_RE.match(value) or len(value) > 64:
        return (
            f"project_slug {value!r} is not a valid directory name: use 1-64 lowercase "
            "letters, digits, '-' or '_', starting with a letter"
        )
    return None


def check_package(value: str) -> str | None:
    if not PACKAGE_RE.match(value) or len(value) > 64:
        return (
            f"package_name {value!r} is not a valid Python package name: use lowercase "
            "letters, digits and '_', starting with a letter"
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return f"package_name {value!r} is a Python keyword"
    if value in sys.stdlib_module_names or value in RESERVED_PACKAGES:
        return f"package_name {value!r} would shadow the module of the same name; choose another"
    return None


def check_email(value: str) -> str | None:
    if not EMAIL_RE.match(value):
        return f"author_email {value!r} is not an e-mail address (expected name@domain.tld)"
    return None


def check_choice(name: str, value: str) -> str | None:
    allowed = CHOICES[name]
    if value not in allowed:
        return f"{name} {value!r} is not one of: {', '.join(allowed)}"
    return None


def check_remote_url(remote: str, url: str) -> str | None:
    """The URL must suit the chosen storage: empty for none, a bucket URL or a directory otherwise."""
    if remote not in CHOICES["remote"]:
        return None  # check_choice reports it
    if remote == "none":
        return f"remote_url {url!r} is given but remote is 'none'; choose a remote or leave the URL empty" if url else None
    example = REMOTE_URL_EXAMPLES[remote]
    if not url:
        return f"remote_url is empty; remote {remote!r} needs one, e.g. {example}"
    if len(url) > MAX_TEXT:
        return f"remote_url is {len(url)} characters long; at most {MAX_TEXT} are allowed"
    if any(ord(ch) < 32 for ch in url) or any(ch in url for ch in REMOTE_FORBIDDEN_CHARACTERS) or url != url.strip():
        return f"remote_url {url!r} contains a quote, backslash, brace, '#', ';', control character or outer space"
    if remote == "local":
        if "://" in url:
            return f"remote_url {url!r} is a URL; remote 'local' needs a directory, e.g. {example}"
        if url.startswith("~"):
            return f"remote_url {url!r} starts with '~', which DVC does not expand; give an absolute or relative path"
        return None
    if not REMOTE_URL_RE[remote].match(url):
        return f"remote_url {url!r} is not a {remote} URL (expected e.g. {example})"
    return None


def validate(answers: dict) -> list[str]:
    """Return one message per bad answer (empty when all answers are good)."""
    errors: list[str | None] = []
    for name in ("project_name", "description", "author_name"):
        errors.append(check_text(name, str(answers.get(name, ""))))
    project_name, slug, package = (str(answers.get(k, "")) for k in ("project_name", "project_slug", "package_name"))
    derived_from_nothing = slug == UNDERIVABLE_SLUG
    if not (derived_from_nothing and errors[0]):  # a blank name is the one cause: name it alone
        errors.append(check_slug(slug, project_name))
    if not (derived_from_nothing and package == UNDERIVABLE_SLUG):  # package_name derived from it
        errors.append(check_package(package))
    errors.append(check_email(str(answers.get("author_email", ""))))
    for name in CHOICES:
        errors.append(check_choice(name, str(answers.get(name, ""))))
    errors.append(check_remote_url(str(answers.get("remote", "none")), str(answers.get("remote_url", ""))))
    return [e for e in errors if e]


def main(answers: dict) -> int:
    errors = validate(answers)
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(json.loads({{ cookiecutter | jsonify | tojson }})))
