"""`convscope datasets`: the catalogue of named datasets; `convscope datasets fetch NAME`: download ahead of time."""

from __future__ import annotations

import argparse

from ..i18n import _


def add_parser(sub) -> None:
    from ..data.catalog import CATALOG

    p = sub.add_parser(
        "datasets",
        help=_("list the named datasets (--data NAME) and download them ahead of time"),
        description=_(
            "Named datasets are downloaded once into $CONVSCOPE_DATA_DIR (else $XDG_CACHE_HOME/convscope, else ~/.cache/convscope), verified, and used offline from then on."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help=_("the catalogue (the default)"))
    fetch = actions.add_parser("fetch", help=_("download and convert named datasets now"))
    fetch.add_argument("names", metavar="NAME", nargs="+", help=", ".join(CATALOG))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.catalog import entry
    from ..data.download import CacheSettings
    from ..data.named import datasets, prepare
    from ..presentation.table import text_table

    settings = CacheSettings.from_env()
    if args.action == "fetch":
        for found in [entry(name) for name in args.names]:  # every name checked before any download
            folder = prepare(found, settings)
            print(_("{dataset}: ready in {path}").format(dataset=found.name, path=folder.parent))
        return 0
    rows = [
        [
            info.name,
            f"{info.entry.images:,}",
            str(len(info.entry.class_names)),
            f"{info.entry.download_size / 1e6:,.1f} MB",
            _("yes") if info.cached else _("no"),
            info.entry.licence,
        ]
        for info in datasets(settings)
    ]
    header = [_("name"), _("images"), _("classes"), _("download"), _("cached"), _("licence")]
    print(text_table(header, rows, right=[False, True, True, True]))
    print(_("cache: {path}").format(path=settings.root))
    return 0
