"""The process one llama.cpp server lives in (started by llamacpp_server.GGUFRunner, run by its path, so it
imports nothing of nursery_core): loads the GGUF (and LoRA GGUFs over it) in xllamacpp's embedded llama-server on
a free loopback port,
prints one JSON line ({"url"} or {"error"}) and serves until its standard input closes (the parent closed it,
or died).

Why a process of its own: llama.cpp keeps the llguidance tokenizer of the last vocabulary in one unguarded
static per process (common/llguidance.cpp, llama_sampler_llg_new_tokenizer), so two servers in one process
rebuild it on every guarded request that follows the other's (most of a second each) and may free it while the
other copies it.
"""
import json
import os
import sys


def main() -> int:
    cfg = json.loads(sys.argv[1])
    try:
        import xllamacpp as xlc

        p = xlc.CommonParams()
        p.model.path = cfg["path"]
        p.n_ctx = cfg["n_ctx"]
        p.n_parallel = cfg["slots"]
        p.kv_unified = False
        if cfg.get("slot_save_path"):
            p.slot_save_path = cfg["slot_save_path"]
        p.warmup = False
        p.verbosity = 0
        p.cpuparams.n_threads = cfg["threads"]
        p.cpuparams_batch.n_threads = cfg["threads"]
        adapters = []
        for path in cfg.get("loras") or []:  # applied to every request at scale 1 (llama-server's --lora)
            lora = xlc.CommonAdapterLoraInfo()
            lora.path = path
            lora.scale = 1.0
            adapters.append(lora)
        if adapters:
            p.lora_adapters = adapters
        server = xlc.Server(p)
    except Exception as e:  # noqa: BLE001 (reported to the parent, which raises it as a BackendError)
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    print(json.dumps({"url": server.listening_address}), flush=True)
    sys.stdin.read()  # until the parent closes it
    os._exit(0)  # the server's threads need no orderly teardown: the process is going


if __name__ == "__main__":
    raise SystemExit(main())
