"""The book's editions: the English site, the Chinese site from the same executed chapters, and the message catalogues.

    python book/_ext/editions.py site [--path-output DIR] [--all]   both editions: what `make book` runs
    python book/_ext/editions.py zh [--path-output DIR]             Chinese site in DIR/_build/html/zh
    python book/_ext/editions.py catalogues                         English messages -> book/locales/zh_CN/LC_MESSAGES

The English edition is ``jupyter-book build .``; it executes the chapters whose outputs are stale and keeps the outputs
in the execution cache (``dlbook_execute``). The Chinese edition is the same Sphinx project built with
``language=zh_CN``: Sphinx replaces every paragraph, heading and table cell by its translation from the ``.po``
catalogues, and the chapters' outputs come from the same cache, so code, numbers and figures cannot differ between the
editions. It refuses to build if a chapter would have to be executed first (build the English edition first).

``site`` executes the stale chapters first (one kernel per core, ``dlbook_execute.execute_chapters``), then builds the
two editions at the same time, one Sphinx process each: neither executes anything then, and they write to different
folders (the Chinese one to ``_build/zh/html``, copied into ``html/zh/`` at the end) with different doctree folders.

The catalogues are made the usual way: Sphinx's ``gettext`` builder extracts the messages (without executing anything)
and ``sphinx-intl update`` merges them into the ``.po`` files: a new message arrives untranslated, a changed one
arrives marked fuzzy with its old translation, and a deleted one is dropped.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "book" / "locales"
LANGUAGE = "zh_CN"
EDITION_DIR = "zh"  # the Chinese site lives in <html>/zh/
# what the configuration itself says in English (the theme translates its own words)
CHINESE_STRINGS = {"html_title": "dlbook：可以运行的深度学习基础",
                   "nb_code_prompt_show": "显示代码", "nb_code_prompt_hide": "隐藏代码"}


def glossary_rows(path: Path = ROOT / "book" / "glossary.md") -> list[tuple[str, str]]:
    """The glossary's (English term, Chinese term) rows; the Chinese term without a parenthesised "(also ...)"."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] not in ("English", "") and not set(cells[0]) <= set("-"):
            rows.append((cells[0], re.split(r"\s*[(（]", cells[1])[0].strip()))
    return rows


def search_dictionary(out: Path) -> Path:
    """A word list for the Chinese search index: the glossary's Chinese terms. The index splits text into words with
    jieba, whose own dictionary cuts 正则化 into 正则 / 化; with the terms as words, searching 正则化 finds its pages,
    and 卷积 still finds 转置卷积 (jieba's search mode also indexes the shorter words inside a long one)."""
    words = sorted({w for _, chinese in glossary_rows() for w in chinese.split(" / ")
                    if re.fullmatch(r"[\u4e00-\u9fff]{2,}", w)})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{word} 100000\n" for word in words), encoding="utf-8")
    return out


def _build(outdir: Path, doctreedir: Path, builder: str, overrides: dict, fresh: bool = False) -> int:
    """One Sphinx build of the book as ``jupyter-book build`` configures it, with ``overrides`` on top."""
    from jupyter_book.sphinx import build_sphinx

    config = {"external_toc_path": str(ROOT / "_toc.yml"), "latex_individualpages": False, "nitpicky": True}
    return build_sphinx(ROOT, outdir, path_config=str(ROOT / "_config.yml"), noconfig=True,
                        confoverrides=config | overrides, builder=builder, doctreedir=doctreedir,
                        warningiserror=True, keep_going=True, quiet=True, freshenv=fresh)


def build_chinese(path_output: Path = ROOT, fresh: bool = False) -> Path:
    """Build the Chinese site into ``path_output/_build/html/zh`` from the cached outputs; return that folder.

    Sphinx writes it into ``_build/zh/html`` first, then it is copied into the English site: myst-nb
    (``jupyter_execute/``) and the reader's download (``.dlbook_wheels/``) keep files next to the output folder, and
    that must not be the English site.
    """
    build = path_output / "_build"
    staged, outdir = build / "zh" / "html", build / "html" / EDITION_DIR
    words = search_dictionary(build / "zh-search-words.txt")
    code = _build(staged, build / ".doctrees-zh", "html",
                  {"language": LANGUAGE, "locale_dirs": [str(LOCALES)], "gettext_compact": False,
                   "dlbook_execute": False, "html_search_options": {"dict": str(words)}, **CHINESE_STRINGS},
                  fresh=fresh)
    if code:
        raise SystemExit(f"the Chinese edition failed to build (exit {code})")
    for stray in ("jupyter_execute", ".dlbook_wheels"):  # what earlier builds into html/zh left in the English site
        shutil.rmtree(build / "html" / stray, ignore_errors=True)
    shutil.rmtree(outdir, ignore_errors=True)
    shutil.copytree(staged, outdir)
    return outdir


def toc_notebooks() -> list[Path]:
    """The chapters' notebooks: the table of contents' documents that are notebooks (``only_build_toc_files``)."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    return sorted(p for doc in parse_toc_yaml(ROOT / "_toc.yml") if (p := ROOT / f"{doc}.ipynb").exists())


def execute_stale() -> None:
    """Execute the chapters whose outputs are stale into the execution cache, as the English build would."""
    import yaml

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from dlbook_execute import _package_and_data, default_cache_dir, execute_chapters, load_estimates

    package_dir, data_dir = _package_and_data()
    timeout = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["execute"]["timeout"]
    runs = execute_chapters(toc_notebooks(), default_cache_dir(ROOT), package_dir=package_dir,
                            requirements=ROOT / "requirements.txt", data_dir=data_dir,
                            widgets=os.environ.get("DLBOOK_WIDGETS", "live"), timeout=timeout,
                            estimates=load_estimates(ROOT / "book"))
    failed = [r for r in runs.values() if r.status == "failed"]
    if failed:
        raise SystemExit("chapters failed to execute:\n" + "\n\n".join(
            f"{r.path.relative_to(ROOT)}: {r.error[-3000:]}" for r in failed))


def build_site(path_output: Path = ROOT, rebuild_all: bool = False) -> Path:
    """Both editions into ``path_output/_build/html`` (English) and its ``zh/`` (Chinese); return the English folder.

    The stale chapters are executed first; then the English build (``jupyter-book build``, in a second process whose
    output goes to ``_build/english-build.log``) and the Chinese one run side by side, both reading the outputs from
    the cache. Any warning fails either build; a failure of either is reported, with the English log's end.
    """
    execute_stale()
    english = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--path-output",
               str(path_output), "-W", "-n", "--keep-going", *(["--all"] if rebuild_all else [])]
    log = path_output / "_build" / "english-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the English edition (log: {log}) and the Chinese edition side by side")
    chinese_error = None
    with log.open("w", encoding="utf-8") as out, \
            subprocess.Popen(english, stdout=out, stderr=subprocess.STDOUT) as proc:
        try:
            build_chinese(path_output, fresh=rebuild_all)
        except SystemExit as exc:
            chinese_error = exc
        finally:
            code = proc.wait()
    failures = [str(chinese_error)] if chinese_error else []
    if code:
        failures.append(f"the English edition failed to build (exit {code}); the end of its log:\n"
                        + log.read_text(encoding="utf-8")[-6000:])
    if failures:
        raise SystemExit("\n\n".join(failures))
    return path_output / "_build" / "html"


def update_catalogues(path_output: Path = ROOT) -> Path:
    """Extract the English messages and merge them into the ``.po`` files; return the folder of the catalogues."""
    from sphinx_intl.basic import update

    pot = path_output / "_build" / "gettext"
    code = _build(pot, path_output / "_build" / ".doctrees-gettext", "gettext",
                  {"gettext_compact": False, "gettext_location": False, "nb_execution_mode": "off",
                   "project": "dlbook"})
    if code:
        raise SystemExit(f"extracting the messages failed (exit {code})")
    update(str(LOCALES), str(pot), (LANGUAGE,), line_width=120, ignore_obsolete=True)  # deleted messages are dropped
    return LOCALES / LANGUAGE / "LC_MESSAGES"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("site", "zh", "catalogues"))
    parser.add_argument("--path-output", type=Path, default=ROOT)
    parser.add_argument("--all", action="store_true", help="site: re-write every page of the English edition")
    args = parser.parse_args(argv)
    if args.what == "site":
        os.environ.setdefault("DLBOOK_WIDGETS", "static")  # the site has no kernel: every slider frame precomputed
        done = build_site(args.path_output, args.all)
    else:
        done = build_chinese(args.path_output) if args.what == "zh" else update_catalogues(args.path_output)
    print(f"{args.what}: {done}")


if __name__ == "__main__":
    sys.exit(main())
