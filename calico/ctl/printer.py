"""`calicoctl get -o ...`: turn what `get` found into Calico's output.

What `get` hands over is Calico's result list: one object per thing asked for, in order. A
kind without names gives its `<Kind>List` (`items` possibly empty, `metadata.resourceVersion`
the store's revision at the time of the list); a name (or a document of `-f`) gives that
resource. Formats:

- `yaml` / `yml`, `json`: one object prints as itself, several (or none) as a bare sequence;
  encodings in `goformat`.
- `ps` (default), `wide`: one table per object (`tables`).
- `custom-columns=A,B`: Calico's form, column headings of the kind's table; we also accept
  kubectl's `NAME:.metadata.name,...` form (heading and field path).
- `go-template=T`, `go-template-file=F`: `gotemplate`, run on the list of objects.

An unknown format, column or template construct is a CtlError before anything is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import goformat, gotemplate, tables
from .session import CtlError

Emit = Callable[[str], None]


@dataclass(frozen=True)
class Printer:
    mode: str                       # yaml | json | table | columns | template
    wide: bool = False
    headings: tuple[str, ...] | None = None   # Calico-style custom columns
    paths: tuple[tuple[str, str], ...] = ()   # kubectl-style custom columns
    template: str = ""


def make_printer(output: str) -> Printer:
    """The printer for `-o OUTPUT`, or CtlError naming what is wrong with it."""
    if output in ("yaml", "yml"):
        return Printer("yaml")
    if output == "json":
        return Printer("json")
    if output in ("ps", "wide"):
        return Printer("table", wide=output == "wide")
    key, _, value = output.partition("=")
    if key == "go-template":
        if not value:
            raise CtlError("need to specify a template")
        return Printer("template", template=_checked_template(value))
    if key == "go-template-file":
        if not value:
            raise CtlError("need to specify a template file")
        try:
            with open(value) as f:
                return Printer("template", template=_checked_template(f.read()))
        except OSError as err:
            raise CtlError(f"cannot read template file {value}: {err.strerror}") from None
    if key == "custom-columns":
        if not value:
            raise CtlError("need to specify at least one column")
        return _columns(value.split(","))
    raise CtlError(f"unrecognized output format '{output}'")


def _checked_template(text: str) -> str:
    try:
        gotemplate.parse(text)
    except gotemplate.TemplateError as err:
        raise CtlError(f"invalid go-template: {err}") from None
    return text


def _columns(specs: list[str]) -> Printer:
    if not any(":" in s for s in specs):
        return Printer("table", headings=tuple(specs))
    paths = []
    for spec in specs:
        head, sep, path = spec.partition(":")
        if not sep or not head or not path.startswith("."):
            raise CtlError(f"custom-columns: {spec!r} is not HEADING:.field.path "
                           "(or give only Calico column names, e.g. NAME,CIDR)")
        paths.append((head, path))
    return Printer("columns", paths=tuple(paths))


def _kind_and_items(obj: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    kind = obj.get("kind", "")
    if kind.endswith("List") and "items" in obj:
        return kind[: -len("List")], obj["items"]
    return kind, [obj]


def _field(doc: dict[str, Any], path: str) -> str:
    cur: Any = doc
    for key in path.strip(".").split("."):
        if not isinstance(cur, dict) or key not in cur:
            return "<none>"
        cur = cur[key]
    if isinstance(cur, list):
        return ",".join(goformat.go_value(v) for v in cur)
    return goformat.go_value(cur)


def check_headings(printer: Printer, kinds: list[str]) -> None:
    """Refuse unknown custom columns before anything is fetched or printed."""
    if printer.mode == "table" and printer.headings is not None:
        for kind in kinds:
            try:
                tables.headings_for(kind, False, False, printer.headings)
            except tables.HeadingError as err:
                raise CtlError(str(err)) from None


def print_objects(printer: Printer, objects: list[dict[str, Any]], emit: Emit,
                  print_namespace: bool, ctx: tables.Context) -> None:
    """Print Calico's result list in the chosen format."""
    if printer.mode in ("yaml", "json"):
        body: Any = objects[0] if len(objects) == 1 else objects
        if printer.mode == "json":
            emit(goformat.to_json(body if objects else None))
        else:
            emit(goformat.to_yaml(body))
        return
    if printer.mode == "template":
        try:
            emit(gotemplate.render(printer.template, objects))
        except gotemplate.TemplateError as err:
            raise CtlError(f"go-template: {err}") from None
        return
    for obj in objects:
        kind, items = _kind_and_items(obj)
        if printer.mode == "columns":
            rows = [[h for h, _ in printer.paths]]
            rows += [[_field(doc, p) for _, p in printer.paths] for doc in items]
            emit(tables.tabwrite(rows) + "\n")
            continue
        try:
            heads = tables.headings_for(kind, printer.wide,
                                        print_namespace and printer.headings is None,
                                        printer.headings)
        except tables.HeadingError as err:
            raise CtlError(str(err)) from None
        emit(tables.render(kind, items, heads, ctx))
