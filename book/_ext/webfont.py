"""The site's Chinese web font: Noto Sans SC (SIL Open Font License), regular weight, from the npm package
``@fontsource/noto-sans-sc``, which cuts the font into about a hundred files by Unicode range. A page downloads only the
files whose range holds a character it shows, so the Chinese terms of an English chapter cost a few small files and a
Chinese chapter a few dozen, on a machine with no CJK font installed.

    python book/_ext/webfont.py PACKAGE_DIR OUT_DIR

copies the Chinese slices' WOFF2 files (regular weight) from the unpacked package into ``OUT_DIR/files`` and writes
``OUT_DIR/noto-sans-sc.css`` with one ``@font-face`` per range, under the family name ``dlbook CJK`` (the name the
site's font stack uses). Latin text is left to the theme's fonts: the named Latin, Cyrillic and Vietnamese files are
not copied, and the Latin letters of the slice that also holds the commonest Chinese characters are cut from its range.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

FAMILY = "dlbook CJK"
_FACE = re.compile(r"@font-face\s*\{(.*?)\}", re.S)
_FILE = re.compile(r"url\(\./files/([\w.-]+\.woff2)\)")
_RANGE = re.compile(r"unicode-range:\s*([^;]+);")


_CJK_FILE = re.compile(r"noto-sans-sc-\d+-400-normal\.woff2")  # the numbered slices; the named ones are Latin etc.
LATIN_END = 0x24F  # Basic Latin to Latin Extended-B: the theme's fonts draw these


def _without_latin(unicode_range: str) -> str:
    """A CSS unicode-range without its code points up to U+024F (a part that straddles the bound is cut there)."""
    kept = []
    for part in unicode_range.replace(" ", "").split(","):
        low, _, high = part.removeprefix("U+").removeprefix("u+").partition("-")
        first, last = int(low, 16), int(high or low, 16)
        if last > LATIN_END:
            first = max(first, LATIN_END + 1)
            kept.append(f"U+{first:x}" + (f"-{last:x}" if last > first else ""))
    return ",".join(kept)


def font_faces(css: str) -> list[tuple[str, str]]:
    """(WOFF2 file name, unicode-range) of every numbered, i.e. Chinese, regular-weight face of fontsource's
    ``400.css``, its range without Latin letters. The slice of the commonest characters (的, 一, ，, 。 ...) also holds
    ASCII: cut from its range, not left out, or the commonest characters would have no font where none is installed."""
    faces = []
    for body in _FACE.findall(css):
        file, ranges = _FILE.search(body), _RANGE.search(body)
        if file and ranges and _CJK_FILE.fullmatch(file.group(1)):
            cjk = _without_latin(ranges.group(1).strip())
            if cjk:
                faces.append((file.group(1), cjk))
    return faces


def write_font(package: Path, out: Path) -> Path:
    faces = font_faces((package / "400.css").read_text(encoding="utf-8"))
    if not faces:
        raise SystemExit(f"no font faces found in {package / '400.css'}")
    (out / "files").mkdir(parents=True, exist_ok=True)
    rules = []
    for file, ranges in faces:
        shutil.copy(package / "files" / file, out / "files" / file)
        rules.append(f"@font-face {{ font-family: '{FAMILY}'; font-style: normal; font-weight: 400; "
                     f"font-display: swap; src: url(files/{file}) format('woff2'); unicode-range: {ranges}; }}")
    css = out / "noto-sans-sc.css"
    css.write_text("/* Noto Sans SC (SIL Open Font License 1.1), cut by Unicode range by @fontsource/noto-sans-sc */\n"
                   + "\n".join(rules) + "\n", encoding="utf-8")
    return css


if __name__ == "__main__":
    print(write_font(Path(sys.argv[1]), Path(sys.argv[2])))
