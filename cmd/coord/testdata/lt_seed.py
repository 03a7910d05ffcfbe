#!/usr/bin/python3
"""Creates a torrent of DATA with libtorrent (python3-libtorrent, 2.0: hybrid
v1+v2 by default, with BEP 47 pad files between files) and seeds it.

usage: lt_seed.py FORMAT DATA_DIR NAME TRACKER TORRENT_OUT LISTEN_IP PORT
FORMAT is hybrid, v1 or v2. With PORT 0 it only writes the torrent.
Prints "seeding" once the torrent is checked and seeding."""
import sys, time
import libtorrent as lt

fmt, data, name, tracker, out, ip, port = sys.argv[1:8]
fs = lt.file_storage()
lt.add_files(fs, data + "/" + name)
flags = {"hybrid": 0, "v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only}[fmt]
ct = lt.create_torrent(fs, 32768, flags=flags)
ct.add_tracker(tracker)
lt.set_piece_hashes(ct, data)
with open(out, "wb") as f:
    f.write(lt.bencode(ct.generate()))
if port == "0":
    sys.exit(0)
s = lt.session({"listen_interfaces": "%s:%s" % (ip, port), "enable_dht": False, "enable_lsd": False,
                "enable_upnp": False, "enable_natpmp": False, "allow_multiple_connections_per_ip": True,
                "announce_to_all_trackers": True, "outgoing_interfaces": ip,
                "alert_mask": lt.alert.category_t.error_notification})
ti = lt.torrent_info(out)
h = s.add_torrent({"ti": ti, "save_path": data})
while not h.status().is_seeding:
    time.sleep(0.1)
print("seeding", flush=True)
while True:
    time.sleep(1)
