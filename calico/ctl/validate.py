"""`calicoctl validate -f FILE|DIR|-`: parse and validate resources offline, as Calico's does.

Nothing connects to a datastore: each document goes through the same parsing and validation
as `apply` (Calico's defaults, field checks with messages naming the field and value). Output
is Calico's: `Successfully validated N '<Kind>' resource(s)`; a document that fails gets our
per-resource line and Calico's summary (`failed to validate any '<Kind>' resources: [...]`,
or a partial success followed by `hit error: [...]`), and the exit code is 1.
"""

from __future__ import annotations

import click

from calico import api

from .crud import _failure, read_documents, summary
from .session import CtlError


def validate(filename: str | None, recursive: bool, skip_empty: bool) -> bool:
    if not filename:
        raise CtlError("validate needs -f FILENAME (a file, a directory or '-')")
    docs = read_documents(filename, recursive, skip_empty)
    if not docs:
        click.echo("No resources specified")
        return True
    errors: list[str] = []
    for doc in docs:
        try:
            api.validate(doc.body)
        except (api.ValidationError, ValueError) as err:
            errors.append(_failure(doc.body, err))
            click.echo(f"Failed to validate {errors[-1]}", err=True)
    summary("validate", [d.body for d in docs], len(docs) - len(errors), errors)
    return not errors
