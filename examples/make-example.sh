#!/bin/sh
# Builds the shipped example: a small vendor bundle, a demo vendor key, and its
# detached signature. The demo key's secret half is thrown away with the temporary
# GnuPG home, so nobody can sign with it again; the public half is pinned in
# keyring/dten/. Re-running makes a new key (and so a new pin).
#
#   sh examples/make-example.sh        (from the repository root)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
gnupghome=$(mktemp -d)
trap 'rm -rf "$gnupghome"' EXIT
export GNUPGHOME="$gnupghome"

python3 - "$root/examples/Full-upgrade-package-dten.zip" <<'PY'
import sys, zipfile
files = {
    "dten/VERSION": "4.2.1\n",
    "dten/install.sh": "#!/bin/sh\nset -e\nsudo systemctl stop dten-agent.service\ncp -r bin /opt/dten/\nsudo systemctl start dten-agent.service\n",
    "dten/etc/cron.d/dten-import": "# nightly data import\n0 3 * * * dten /opt/dten/bin/import --from sftp://sftp-legacy.dten.example/exports\n",
    "dten/systemd/dten-agent.service": "[Unit]\nDescription=DTEN agent\n\n[Service]\nUser=dten\nExecStart=/opt/dten/bin/agent --server https://api.dten.example\n\n[Install]\nWantedBy=multi-user.target\n",
    "dten/bin/agent": "#!/bin/sh\necho agent\n",
}
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for name, body in files.items():
        info = zipfile.ZipInfo(name, date_time=(2026, 11, 1, 0, 0, 0))
        info.external_attr = (0o755 if name.endswith(("install.sh", "agent")) else 0o644) << 16
        z.writestr(info, body)
PY

gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-generate-key 'DTEN Demo Release Signing <security@dten.example>' ed25519 sign 3y
fpr=$(gpg --batch --with-colons --list-keys | awk -F: '/^fpr/ {print $10; exit}')
gpg --batch --armor --export "$fpr" > "$root/keyring/dten/dten-demo-release.asc"
rm -f "$root/examples/Full-upgrade-package-dten.zip.asc"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' --armor --detach-sign \
    --digest-algo SHA256 --local-user "$fpr" \
    --output "$root/examples/Full-upgrade-package-dten.zip.asc" "$root/examples/Full-upgrade-package-dten.zip"
echo "demo key $fpr"
