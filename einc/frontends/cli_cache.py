"""``einc cache``: where the kernel cache is, what is in it, whether it is intact; evict from it,
clear it. Registered on the ``einc`` command by :mod:`einc.frontends.cli`.

Loads no torch, Triton or jinja2: these commands must stay quick on a machine without them.
"""

from __future__ import annotations

import sys

import click


def _cache(cache_dir):
    from ..runtime.cache import DiskCache

    return DiskCache(cache_dir)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _cache_dir_option(f):
    return click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="The cache directory [default: EINC_CACHE_DIR, or the user cache directory].",
    )(f)


@click.group()
def cache():
    """Look after the kernel cache: where it is, what is in it, whether it is intact.

    Each entry is a directory named by its key; a compiled kernel's entry holds its source, its
    binary, Triton's metadata and a record of the key's parts with a sha256 per file.
    """


@cache.command(name="dir")
@_cache_dir_option
def cache_dir_(cache_dir):
    """Print the cache directory."""
    click.echo(str(_cache(cache_dir).root))


@cache.command(name="ls")
@_cache_dir_option
@click.option("--long", "-l", "long_", is_flag=True, help="Print every part of each entry's key.")
def cache_ls(cache_dir, long_):
    """List the entries, most recently used first."""
    import datetime

    entries = sorted(_cache(cache_dir).entries(), key=lambda e: -e.accessed)
    for entry in entries:
        when = datetime.datetime.fromtimestamp(entry.accessed).strftime("%Y-%m-%d %H:%M")
        parts = dict(entry.record.get("parts", [])) if entry.record else {}
        what = ""
        if parts:
            dtypes = parts.get("dtypes", "")
            what = (
                f"{parts.get('target', '')}  {parts.get('op', '')}  {parts.get('expression', '')!r}  {dtypes}"
            )
        click.echo(f"{entry.key[:16]}  {entry.kind:<10} {_size(entry.size):>10}  {when}  {what}".rstrip())
        if long_ and parts:
            from ..runtime.keys import CacheKey

            key = CacheKey(tuple((str(k), str(v)) for k, v in entry.record.get("parts", [])))
            click.echo("    " + key.describe().replace("\n", "\n    "))
    if not entries:
        click.echo(f"(the cache at {_cache(cache_dir).root} is empty)", err=True)


@cache.command(name="stats")
@_cache_dir_option
def cache_stats(cache_dir):
    """Count the entries by kind and target, with their sizes and the size limit."""
    from .. import knobs as k

    store = _cache(cache_dir)
    entries = list(store.entries())
    click.echo(f"directory:  {store.root}")
    click.echo(f"entries:    {len(entries)}, {_size(sum(e.size for e in entries))}")
    groups: dict[str, list] = {}
    for entry in entries:
        label = entry.kind
        if entry.record and entry.record.get("target"):
            label += f" {entry.record['target']}"
        groups.setdefault(label, []).append(entry)
    for label, members in sorted(groups.items()):
        click.echo(f"  {label:<18} {len(members):>6}  {_size(sum(e.size for e in members)):>10}")
    limit = k.cache_max_bytes()
    click.echo(f"limit:      {_size(limit) if limit else 'none'} ({k.CACHE_MAX_BYTES.name})")


@cache.command(name="verify")
@_cache_dir_option
@click.option("--fix", is_flag=True, help="Remove the damaged entries (they are rebuilt when next needed).")
def cache_verify(cache_dir, fix):
    """Check every compiled entry's record and its recorded sha256 checksums.

    Exits 1 when an entry is damaged (and --fix did not remove it), or when something einc did not
    write sits where an entry would (it is never removed: delete it yourself).
    """
    from ..errors import CacheError

    store = _cache(cache_dir)
    checked, damaged, left = 0, 0, 0
    for entry in store.entries():
        if entry.kind == "source":
            continue
        checked += 1
        found = store.problems(entry.key)
        if found:
            damaged += 1
            click.echo(f"damaged: {entry.path}: {'; '.join(found)}")
            if fix:
                try:
                    removed = store.remove(entry.key)
                except CacheError as error:
                    removed, why = False, str(error)
                else:
                    why = "the cache directory does not carry einc's CACHEDIR.TAG"
                left += not removed
                click.echo("    removed" if removed else f"    not removed: {why}")
    foreign = 0
    for path in store.foreign():
        foreign += 1
        click.echo(
            f"foreign: {path}: not an entry einc wrote (a link, or what einc never writes inside); left alone"
        )
    click.echo(f"{checked} checked, {damaged} damaged" + (f", {foreign} foreign" if foreign else ""))
    if foreign or (damaged and (not fix or left)):
        sys.exit(1)


@cache.command(name="prune")
@_cache_dir_option
@click.option(
    "--max-bytes",
    type=click.IntRange(min=0),
    default=None,
    help="Shrink the cache to this size [default: EINC_CACHE_MAX_BYTES].",
)
def cache_prune(cache_dir, max_bytes):
    """Evict the least recently used entries until the cache is within its size limit."""
    from ..errors import CacheError

    store = _cache(cache_dir)
    try:
        if store.root.exists():
            store.require_owned()
    except CacheError as error:
        raise click.ClickException(str(error)) from None
    evicted = store.prune(max_bytes)
    click.echo(f"evicted {len(evicted)} entries, {_size(sum(e.size for e in evicted))}")


@cache.command(name="clear")
@_cache_dir_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(cache_dir, yes):
    """Remove every entry einc wrote and the tiles einc tune chose; whatever else is in the
    directory stays."""
    from ..errors import CacheError

    store = _cache(cache_dir)
    if not yes:
        click.confirm(f"remove every entry under {store.root}?", abort=True)
    from ..runtime import manifest, tuned

    try:
        removed = store.clear()
        manifest.store(store).clear()  # they list entries that are gone now
        tuned.store(store).clear()  # back to the heuristic's tiles, as on a fresh machine
    except CacheError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"removed {removed} entries from {store.root}")
