# Example environment: copy to envs/prod.tfvars, edit, then
#   terraform -chdir=deploy/terraform/gcp init
#   terraform -chdir=deploy/terraform/gcp apply -var-file=envs/prod.tfvars
# Addresses below are documentation ranges (RFC 5737); replace them with yours.

project_id = "acme-voice-prod"
region     = "europe-west1"
zone       = "europe-west1-b"
name       = "patchbay-bridge"
labels     = { env = "prod", team = "voice" }

# Two bridges, two extensions: put 7001 and 7002 in a ring group / queue on the PBX.
instance_count = 2
sip_extensions = ["7001", "7002"]

# The PBX: where the bridges register, and every public address it sends SIP or RTP from.
sip_registrar = "pbx.acme.example:5060"
sip_transport = "udp"
pbx_cidrs     = ["198.51.100.20/32"]

# The Worker deployed with `pnpm deploy:workers`.
cloud_url = "wss://patchbay.acme.workers.dev"

# Built with `pnpm --filter @patchbay/bridge build -- --pack`, uploaded with
#   gcloud storage cp bridge-vm/dist/patchbay-bridge.tar.gz gs://acme-voice-releases/patchbay/0.1.0/
bridge_release_gcs = "gs://acme-voice-releases/patchbay/0.1.0/patchbay-bridge.tar.gz"
# `sha256sum bridge-vm/dist/patchbay-bridge.tar.gz`; the VM refuses any other tarball.
bridge_release_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

drain_timeout_s = 300
extra_env = {
  SIP_REJECT_MODE = "silent"
}
