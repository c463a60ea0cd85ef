#!/usr/bin/env python3
"""bench/profile/categorize.py PERF_SCRIPT_OUTPUT - where hookd's CPU goes, by concern.

Reads the output of `perf script -F comm,tid,ip,sym` of a `perf record --call-graph dwarf`
taken on the daemon during a bench pass, and names each sample by the innermost frame that
matches one of the rules below (so a 202 written by evhttp counts as the API server, and
curl called by the scheduler counts as curl). Prints the share of samples per concern.
Method and figures: bench/README.md, "Where the time goes".
"""
import collections
import re
import sys
samples=open(sys.argv[1] if len(sys.argv) > 1 else 'perf.txt').read().split('\n\n')
# categories checked from the innermost frame outwards: the first frame that matches names it
rules=[
 ('store: commit (LMDB write + fdatasync)', r'^mdb_txn_commit$|^mdb_env_sync'),
 ('store: applying ops (LMDB puts, record encode)', r'^store_batch_apply$|^store_apply_one$|^mdb_put$|^mdb_cursor_put$|^store_measure$'),
 ('publish: JSON parse of the request (jansson)', r'^api_body_json$'),
 ('publish: envelope, fan-out planning', r'^api_publish_envelope$|^fanout_message$|^api_envelope_text$|^api_publish_plan$|^fanout_publish$'),
 ('policy thread (Lua + fan-out jobs)', r'^worker_main$|^fanout_job_run$'),
 ('signing (HMAC)', r'^sign_compute$'),
 ('delivery: curl (HTTP client, its sockets)', r'^curl_multi_socket_action$|^curl_multi_add_handle$|^curl_easy_|^http_event_cb$|^http_timer_cb$|^http_socket_fn$|^http_send$|^http_check_done$'),
 ('scheduler (heap, start, outcome records)', r'^dispatch_'),
 ('answers after commit (202s, done callbacks)', r'^store_run_done$|^store_batch_done$|^api_published$|^worker_done_cb$'),
 ('API: HTTP server (evhttp, framing, routing)', r'^api_route$|^api_conn_|^api_scan_|^evhttp_|^bufferevent_|^evbuffer_'),
 ('writer thread, other', r'^store_writer_main$'),
 ('event loop, other', r'^event_base_loop$'),
]
cnt=collections.Counter(); total=0
for s in samples:
    lines=[l.strip() for l in s.strip().split('\n')]
    if len(lines)<2: continue
    total+=1
    frames=[re.sub(r'^[0-9a-f]+ ','',l).replace(' (inlined)','') for l in lines[1:]]
    cat='other (kernel, libc outside these)'
    for f in frames:
        hit=None
        for name,pat in rules:
            if re.search(pat,f): hit=name; break
        if hit: cat=hit; break
    cnt[cat]+=1
for k,v in cnt.most_common(): print(f'{100*v/total:5.1f} %  {k}')
print(total,'samples')
