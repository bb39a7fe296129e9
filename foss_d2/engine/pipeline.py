"""Many images through one predictor: the next ones decoded in a reader thread while the model
runs, several in the model at once, the answers handed back in input order, and a bad image an
error in its place instead of the end of the batch. Shared by ``FaceAgeEstimator.map`` and the
runner behind ``foss-d2 demo`` and ``survey`` (apps/runner.py)."""

import collections
import ctypes
import functools
import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from .api import instances_to_faces

logger = logging.getLogger("foss_d2.pipeline")

# an input predict_in_order passes by without the model (a video frame done before, or unread)
NOT_RUN = RuntimeError("not run")
# images between two hand-backs of the allocator's free memory (release_free_memory; 0: none)
RELEASE_EVERY = 32


@functools.lru_cache(maxsize=None)
def _malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS, Windows)."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, TypeError):  # (TypeError: Windows has no process-wide CDLL(None))
        return None


def release_free_memory() -> bool:
    """Hands the memory glibc's allocator holds free back to the system (``malloc_trim``); False
    where there is none to call. Every image frees its buffers, but with several threads glibc
    keeps much of it in its arenas: over 6 runs through WIDER val's 130 photos the resident set
    grew from 1.5 to 1.9 GiB; trimmed every 32 photos it stays near 1 GiB, the time within the
    runs' spread (docs/RESULTS.md section 2, "Memory over a long run")."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class _Failed:
    """An exception of the reader thread, on its way to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Runs the generator ``produce`` in a thread, at most ``depth`` items ahead, in its order
    (``depth`` 0: in the caller's thread). Its exceptions reach the consumer."""

    _END = object()

    def __init__(self, produce, depth: int):
        self.produce, self.depth = produce, depth
        self._stop = threading.Event()
        if depth > 0:
            self._q = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._run, name="foss-d2-reader", daemon=True)
            self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _run(self):
        try:
            for item in self.produce():
                if not self._put(item):
                    return
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(_Failed(e))
        self._put(self._END)

    def __iter__(self):
        if self.depth <= 0:
            yield from self.produce()
            return
        while True:
            item = self._q.get()
            if item is self._END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self):
        self._stop.set()
        if self.depth > 0:
            self._thread.join(timeout=10)


def faces_or_error(predictor, img):
    """(faces, None), or (None, the error) when the model fails on this image: it is skipped with the
    reason, and the batch goes on."""
    try:
        return instances_to_faces(predictor(img)), None
    except Exception as e:  # noqa: BLE001  (one image must not end the batch)
        logger.warning("the model failed on an image: %s: %s", type(e).__name__, e)
        return None, RuntimeError(f"the model failed on this image: {type(e).__name__}: {e}")


def computes_on_cpu(device, backend: str = "pytorch") -> bool:
    """Whether a model on ``device`` (MODEL.DEVICE) with ``backend`` runs on the CPU: onnxruntime
    always does here."""
    return str(device).startswith("cpu") or backend == "onnxruntime"


def runs_on_cpu(predictor) -> bool:
    """``computes_on_cpu`` for ``predictor`` (a FOSSPredictor, or a stand-in without a config)."""
    cfg = getattr(predictor, "cfg", None)
    device = cfg.MODEL.get("DEVICE", "cpu") if cfg is not None and "MODEL" in cfg else "cpu"
    return computes_on_cpu(device, getattr(predictor, "backend", "pytorch"))


def predict_in_order(predictor, decoded, workers: int):
    """(key, img, error, faces) for each decoded (key, img, error), in input order; ``error`` is the
    decoding's or the model's. With ``workers`` > 1, up to that many images run through
    ``predictor`` at once in a thread pool: on 2 cores two one-thread onnxruntime calls do 1.5x the
    photos of one two-thread call (docs/RESULTS.md at 58d4fa8, section 9). On CPU PyTorch's threads
    are shared among the workers, each setting its own count (once set, a thread's count is its
    own): the consumer's thread keeps its count, and the count threads started later take is put
    back at the end. Every ``RELEASE_EVERY`` images the allocator's free memory goes back to the
    system (``release_free_memory``)."""
    results = _predict_in_order(predictor, decoded, workers)
    try:
        for i, result in enumerate(results):
            if RELEASE_EVERY and i % RELEASE_EVERY == RELEASE_EVERY - 1:
                release_free_memory()  # (a long run's resident set stays level)
            yield result
    finally:
        results.close()  # (a consumer that stops early: the workers stop now, not when collected)


def _predict_in_order(predictor, decoded, workers: int):
    """``predict_in_order`` but for the memory given back."""
    if workers <= 1:
        for key, img, error in decoded:
            faces, failed = (None, None) if error is not None else faces_or_error(predictor, img)
            yield key, img, error or failed, faces
        return
    threads = torch.get_num_threads() if runs_on_cpu(predictor) else 0  # (also fixes this thread's own)
    share = max(1, threads // workers)
    initializer = (lambda: torch.set_num_threads(share)) if threads else None
    pool = ThreadPoolExecutor(workers, thread_name_prefix="foss-d2-model", initializer=initializer)
    pending = collections.deque()

    def result_of(item):
        key0, img0, error0, job0 = item
        faces, failed = (None, None) if job0 is None else job0.result()
        return key0, img0, error0 or failed, faces

    try:
        for key, img, error in decoded:
            job = None if error is not None else pool.submit(faces_or_error, predictor, img)
            pending.append((key, img, error, job))
            while len(pending) > workers or (pending and pending[0][3] is None):
                yield result_of(pending.popleft())
        while pending:
            yield result_of(pending.popleft())
    finally:
        # A stop (signal, error, a consumer that closes early) leaves the images not yet finished.
        pool.shutdown(wait=True, cancel_futures=True)
        if threads:
            torch.set_num_threads(threads)
