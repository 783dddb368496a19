"""calicoctl: Calico's command set and flags over our datastore client.

Commands: create, apply, replace, delete, get, patch, label, version (ipam and node come with
their packages). Resources come from `-f FILE|DIR|-` (YAML or JSON, multi-document, List kinds)
or from `KIND NAME...` on the command line.

Every resource gets its own result line; the summary line is Calico's ("Successfully applied 2
'IPPool' resource(s)"). An invalid document is rejected whole (nothing of it is written) and
the others still go through; the exit code is 1 if anything failed. Errors a user can cause are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import click

from calico import api
from calico.datastore import kv

from . import crud
from . import get as get_cmd
from .errors import CalicoGroup, calico_message
from .session import ALLOW_MISMATCH, CtlError, Session

CONFIG_HELP = "Path to the file containing connection configuration in YAML or JSON format."
DEFAULT_CONFIG = "/etc/calico/calicoctl.cfg"


def common_options(fn: Any) -> Any:
    fn = click.option("-c", "--config", default=DEFAULT_CONFIG, show_default=True,
                      help=CONFIG_HELP)(fn)
    fn = click.option("--allow-version-mismatch", is_flag=True,
                      help="Go on when the cluster's Calico version is not this client's "
                           "(accepted before or after the subcommand).")(fn)
    return fn


def file_options(fn: Any) -> Any:
    fn = click.option("-f", "--filename", help="File, directory or '-' (stdin).")(fn)
    fn = click.option("-R", "--recursive", is_flag=True,
                      help="Process a directory given with -f recursively.")(fn)
    fn = click.option("--skip-empty", is_flag=True,
                      help="Do not fail on files that contain no resources.")(fn)
    return fn


def ns_option(fn: Any) -> Any:
    return click.option("-n", "--namespace", default=None,
                        help="Namespace of the resource (namespaced kinds only).")(fn)


class _Calicoctl(CalicoGroup):
    """calicoctl's top-level group: `--allow-version-mismatch` is accepted anywhere before a
    `--` (before or after the subcommand, as Calico's calicoctl accepts it) and recorded in
    the context's meta for the session (session.ALLOW_MISMATCH)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        flag = "--allow-version-mismatch"
        if flag in args[:end]:
            ctx.meta[ALLOW_MISMATCH] = True
            args = [a for a in args[:end] if a != flag] + args[end:]
        return super().parse_args(ctx, args)


@click.group(cls=_Calicoctl, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-l", "--log-level", default="panic", help="Accepted for compatibility.")
def cli(log_level: str) -> None:
    """Manage Calico resources."""


@cli.command()
@common_options
@file_options
@ns_option
@click.option("--skip-exists", is_flag=True, help="Skip over resources that already exist.")
def create(config, allow_version_mismatch, filename, recursive, skip_empty, namespace,
           skip_exists):
    """Create resources by filename or stdin."""
    _run(crud.write, Session.from_config(config, create=True), "create", filename, recursive, skip_empty,
         namespace, skip_exists=skip_exists)


@cli.command()
@common_options
@file_options
@ns_option
def apply(config, allow_version_mismatch, filename, recursive, skip_empty, namespace):
    """Create or replace resources by filename or stdin."""
    _run(crud.write, Session.from_config(config, create=True), "apply", filename, recursive, skip_empty,
         namespace)


@cli.command()
@common_options
@file_options
@ns_option
def replace(config, allow_version_mismatch, filename, recursive, skip_empty, namespace):
    """Replace existing resources by filename or stdin."""
    _run(crud.write, Session.from_config(config, create=True), "replace", filename, recursive, skip_empty,
         namespace)


@cli.command()
@common_options
@file_options
@ns_option
@click.option("--skip-not-exists", is_flag=True, help="Skip resources that do not exist.")
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
def delete(config, allow_version_mismatch, filename, recursive, skip_empty, namespace,
           skip_not_exists, kind, names):
    """Delete resources by filename, stdin, or by KIND and NAME."""
    _run(crud.delete, Session.from_config(config), filename, recursive, skip_empty, namespace,
         kind, names, skip_not_exists)


@cli.command()
@common_options
@file_options
@ns_option
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-o", "--output", default="ps",
              help="Output format: ps (default), wide, yaml, json, custom-columns=..., "
              "go-template=..., go-template-file=...")
@click.option("--export", is_flag=True, help="Strip cluster-specific metadata.")
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
def get(config, allow_version_mismatch, filename, recursive, skip_empty, namespace,
        all_namespaces, output, export, kind, names):
    """Display resources by filename, stdin, or by KIND [NAME...]."""
    _run(get_cmd.get, Session.from_config(config), filename, recursive, skip_empty, namespace,
         all_namespaces, output, export, kind, names)


@cli.command()
@common_options
@ns_option
@click.option("-p", "--patch", "patch_text", required=True,
              help="The patch (JSON merge patch, JSON or YAML).")
@click.option("-t", "--type", "patch_type", default="strategic",
              help="Accepted for compatibility: the patch is a JSON merge patch.")
@click.argument("kind")
@click.argument("name")
def patch(config, allow_version_mismatch, namespace, patch_text, patch_type, kind, name):
    """Patch a resource: merge the given fields into it."""
    _run(crud.patch, Session.from_config(config), kind, name, namespace, patch_text)


@cli.command()
@common_options
@ns_option
@click.option("--overwrite", is_flag=True, help="Overwrite the label if it already exists.")
@click.option("--remove", is_flag=True, help="Remove the label.")
@click.argument("kind")
@click.argument("name")
@click.argument("label")
def label(config, allow_version_mismatch, namespace, overwrite, remove, kind, name, label):
    """Add, change or remove a label: KIND NAME key=value | KIND NAME key --remove."""
    _run(crud.label, Session.from_config(config), kind, name, namespace, label, overwrite,
         remove)


@cli.command()
@click.option("--allow-version-mismatch", is_flag=True,
              help="Accepted for compatibility; nothing is compared offline.")
@file_options
def validate(allow_version_mismatch, filename, recursive, skip_empty):
    """Validate resources by filename or stdin, offline (no datastore)."""
    from .validate import validate as run_validate

    _run(run_validate, filename, recursive, skip_empty)


@cli.command()
@common_options
@click.option("--poll", default=None, help="Accepted for compatibility.")
def version(config, allow_version_mismatch, poll):
    """Display the client version and the cluster's."""
    _run(crud.version, Session.from_config(config, connect=False))


def _register_optional_groups() -> None:
    """`ipam`, `node`, `datastore` and `cluster` live in their own modules and join when they
    exist."""
    import importlib

    for module, name in (("calico.ctl.ipam", "ipam"), ("calico.ctl.node", "node"),
                         ("calico.ctl.migrate", "datastore"), ("calico.ctl.cluster", "cluster")):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        cli.add_command(getattr(mod, name), name)


def _run(fn: Any, *args: Any, **kwargs: Any) -> None:
    try:
        ok = fn(*args, **kwargs)
    except kv.Unreachable as err:
        click.echo(f"Failed to execute command: datastore unreachable: {err}", err=True)
        sys.exit(1)
    except (CtlError, api.ValidationError, api.ManifestError, kv.DatastoreError,
            LookupError, ValueError, OSError) as err:
        click.echo(f"Failed to execute command: {calico_message(err)}", err=True)
        sys.exit(1)
    if ok is False:
        sys.exit(1)


# calicoctl is one short run that builds a large acyclic tree (a manifest, its models, the
# printed document) and frees it at exit: the collector's default first threshold (700
# allocations) makes it walk that growing heap again and again, a third of `get -o yaml`'s
# time. A higher threshold keeps cycle collection but runs it rarely; memory is unchanged.
GC_THRESHOLD = (50_000, 20, 20)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    _register_optional_groups()
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
