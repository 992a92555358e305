"""The catalogue of named datasets convscope downloads on first use (`--data notmnist-small`).

Each entry says where its files come from, how large they are, the SHA-256 a published source gives
for them, and the licence or attribution its authors ask for. Hashes are copied only from a published
source, never computed here: the TensorFlow Datasets checksum files (`tensorflow_datasets/url_checksums/
<name>.txt`) for MNIST, Fashion-MNIST, KMNIST, EMNIST and CIFAR-10. notMNIST has no published hash: its
entries pin the byte size the course's own notebook checks (Udacity's `1_notmnist.ipynb`) and the
archive's structure (ten letter folders, the number of readable images, the few known-unreadable ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..i18n import _

LETTERS_A_J = tuple("ABCDEFGHIJ")


@dataclass(frozen=True)
class RemoteFile:
    """One file to download: its name in the cache, where it lives, its size and published hash."""

    name: str
    urls: tuple[str, ...]  # the first that answers is used; a mirror (CONVSCOPE_DATA_MIRROR) replaces them all
    size: int  # bytes
    sha256: str | None  # None only where no source publishes one (said in `hash_source`)


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    title: str
    files: tuple[RemoteFile, ...]
    kind: str  # how the files are read: "idx-gz", "emnist-zip", "cifar10-bin", "notmnist-tar" (archives.py)
    train_images: int
    test_images: int  # 0: no official split (notMNIST); `Dataset.split` makes a stratified one
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    licence: str
    attribution: str
    homepage: str
    hash_source: str  # where the pinned hashes come from, or why there are none
    # Images of the published archive no decoder can read (empty files in notMNIST): skipped by name.
    known_unreadable: tuple[str, ...] = ()
    subset: str = ""  # the part of a multi-dataset archive to read (EMNIST's "letters")

    @property
    def images(self) -> int:
        return self.train_images + self.test_images

    @property
    def download_size(self) -> int:
        return sum(f.size for f in self.files)

    def credit(self) -> str:
        """One line naming the data's origin and licence, printed wherever the data is used."""
        return _("data: {title} ({attribution}), {homepage}; licence: {licence}.").format(
            title=self.title, attribution=self.attribution, homepage=self.homepage, licence=self.licence
        )


def _tfds(name: str, base: str, size: int, sha256: str) -> RemoteFile:
    return RemoteFile(name, (base + name,), size, sha256)


_CVDF = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_KMNIST = "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"
_NOTMNIST = ("http://yaroslavvb.com/upload/notMNIST/", "https://commondatastorage.googleapis.com/books1000/")
_TFDS_HASHES = "TensorFlow Datasets, tensorflow_datasets/url_checksums/{}.txt"
_DIGITS = tuple(str(d) for d in range(10))

CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="mnist",
            title="MNIST handwritten digits",
            files=(
                _tfds(
                    "train-images-idx3-ubyte.gz",
                    _CVDF,
                    9912422,
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                _tfds(
                    "train-labels-idx1-ubyte.gz",
                    _CVDF,
                    28881,
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
                _tfds(
                    "t10k-images-idx3-ubyte.gz",
                    _CVDF,
                    1648877,
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                _tfds(
                    "t10k-labels-idx1-ubyte.gz",
                    _CVDF,
                    4542,
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            ),
            kind="idx-gz",
            train_images=60_000,
            test_images=10_000,
            class_names=_DIGITS,
            image_shape=(28, 28, 1),
            licence="CC BY-SA 3.0",
            attribution="Yann LeCun, Corinna Cortes, Christopher J. C. Burges",
            homepage="http://yann.lecun.com/exdb/mnist/",
            hash_source=_TFDS_HASHES.format("mnist"),
        ),
        CatalogEntry(
            name="fashion-mnist",
            title="Fashion-MNIST",
            files=(
                _tfds(
                    "train-images-idx3-ubyte.gz",
                    _FASHION,
                    26421880,
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                _tfds(
                    "train-labels-idx1-ubyte.gz",
                    _FASHION,
                    29515,
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
                _tfds(
                    "t10k-images-idx3-ubyte.gz",
                    _FASHION,
                    4422102,
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                _tfds(
                    "t10k-labels-idx1-ubyte.gz",
                    _FASHION,
                    5148,
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            ),
            kind="idx-gz",
            train_images=60_000,
            test_images=10_000,
            class_names=(
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
            image_shape=(28, 28, 1),
            licence="MIT",
            attribution="Han Xiao, Kashif Rasul, Roland Vollgraf, Zalando Research",
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            hash_source=_TFDS_HASHES.format("fashion_mnist"),
        ),
        CatalogEntry(
            name="kmnist",
            title="Kuzushiji-MNIST",
            files=(
                _tfds(
                    "train-images-idx3-ubyte.gz",
                    _KMNIST,
                    18165135,
                    "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                ),
                _tfds(
                    "train-labels-idx1-ubyte.gz",
                    _KMNIST,
                    29497,
                    "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
                ),
                _tfds(
                    "t10k-images-idx3-ubyte.gz",
                    _KMNIST,
                    3041136,
                    "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                ),
                _tfds(
                    "t10k-labels-idx1-ubyte.gz",
                    _KMNIST,
                    5120,
                    "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
                ),
            ),
            kind="idx-gz",
            train_images=60_000,
            test_images=10_000,
            # the ten hiragana お き す つ な は ま や れ を, romanised as torchvision's KMNIST names them (plot fonts lack kana)
            class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            image_shape=(28, 28, 1),
            licence="CC BY-SA 4.0",
            attribution="'KMNIST Dataset' (created by CODH), adapted from 'Kuzushiji Dataset' (created by NIJL and "
            "others), doi:10.20676/00000341",
            homepage="http://codh.rois.ac.jp/kmnist/",
            hash_source=_TFDS_HASHES.format("kmnist"),
        ),
        CatalogEntry(
            name="notmnist-small",
            title="notMNIST (small)",
            files=(
                RemoteFile(
                    "notMNIST_small.tar.gz", tuple(b + "notMNIST_small.tar.gz" for b in _NOTMNIST), 8458043, None
                ),
            ),
            kind="notmnist-tar",
            train_images=18_724,
            test_images=0,
            class_names=LETTERS_A_J,
            image_shape=(28, 28, 1),
            licence="none stated; released publicly by the author, cite him",
            attribution="Yaroslav Bulatov, 2011",
            homepage="http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html",
            hash_source="none published: the size (Udacity's 1_notmnist.ipynb) and the archive's structure are checked",
            known_unreadable=(
                "A/RGVtb2NyYXRpY2FCb2xkT2xkc3R5bGUgQm9sZC50dGY=.png",
                "F/Q3Jvc3NvdmVyIEJvbGRPYmxpcXVlLnR0Zg==.png",
            ),
        ),
        CatalogEntry(
            name="notmnist-large",
            title="notMNIST (large)",
            files=(
                RemoteFile(
                    "notMNIST_large.tar.gz", tuple(b + "notMNIST_large.tar.gz" for b in _NOTMNIST), 247336696, None
                ),
            ),
            kind="notmnist-tar",
            train_images=529_114,
            test_images=0,
            class_names=LETTERS_A_J,
            image_shape=(28, 28, 1),
            licence="none stated; released publicly by the author, cite him",
            attribution="Yaroslav Bulatov, 2011",
            homepage="http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html",
            hash_source="none published: the size (Udacity's 1_notmnist.ipynb) and the archive's structure are checked",
            known_unreadable=(
                "A/SG90IE11c3RhcmQgQlROIFBvc3Rlci50dGY=.png",
                "A/Um9tYW5hIEJvbGQucGZi.png",
                "B/TmlraXNFRi1TZW1pQm9sZEl0YWxpYy5vdGY=.png",
                "D/VHJhbnNpdCBCb2xkLnR0Zg==.png",
            ),
        ),
        CatalogEntry(
            name="emnist-letters",
            title="EMNIST Letters",
            files=(
                RemoteFile(
                    "gzip.zip",
                    (
                        "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
                        "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip",
                    ),
                    561753746,
                    "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",
                ),
            ),
            kind="emnist-zip",
            train_images=124_800,
            test_images=20_800,
            class_names=tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),  # upper and lower case merged; labels 1..26 stored
            image_shape=(28, 28, 1),
            licence="none stated; derived from NIST Special Database 19, cite the paper",
            attribution="Gregory Cohen, Saeed Afshar, Jonathan Tapson, André van Schaik, 'EMNIST: an extension of "
            "MNIST to handwritten letters', 2017",
            homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
            hash_source=_TFDS_HASHES.format("emnist"),
            subset="letters",
        ),
        CatalogEntry(
            name="cifar10",
            title="CIFAR-10 (binary version)",
            files=(
                RemoteFile(
                    "cifar-10-binary.tar.gz",
                    ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
                    170052171,
                    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                ),
            ),
            kind="cifar10-bin",
            train_images=50_000,
            test_images=10_000,
            class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
            image_shape=(32, 32, 3),
            licence="none stated; cite the technical report",
            attribution="Alex Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', 2009",
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
            hash_source=_TFDS_HASHES.format("cifar10"),
        ),
    )
}


def find(name: str) -> CatalogEntry | None:
    """The entry called `name` (case-insensitive), or None."""
    return CATALOG.get(name.strip().lower())


def named(source: str) -> CatalogEntry | None:
    """The entry `--data source` means: a file or folder of that name, when there is one, wins."""
    return None if Path(source).exists() else find(source)


def entry(name: str) -> CatalogEntry:
    found = find(name)
    if found is None:
        raise UserError(
            _("'{name}' is not a named dataset; the catalogue holds: {names}.").format(
                name=name, names=", ".join(CATALOG)
            )
        )
    return found
