# Sourced by up.sh: a CA, the apiserver's serving certificate, one client
# certificate per component, the service-account key and kubeconfigs.
pki=$K8S_DIR/pki
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=flotilla-k8s-ca -keyout "$pki/ca.key" -out "$pki/ca.crt"
# cert NAME SUBJECT [SANS]
cert() {
  local ext=$pki/$1.ext
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' >"$ext"
  [ -z "${3:-}" ] || echo "subjectAltName=$3" >>"$ext"
  ossl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr"
  ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 3 -extfile "$ext" -out "$pki/$1.crt"
}
cert apiserver /CN=kube-apiserver "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1"
cert admin "/O=system:masters/CN=kubernetes-admin"
cert controller-manager /CN=system:kube-controller-manager
cert scheduler /CN=system:kube-scheduler
cert kube-proxy /CN=system:kube-proxy
cert kubelet "/O=system:nodes/CN=system:node:$K8S_NODE" "DNS:$K8S_NODE,IP:$NODE_IP"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
for c in admin controller-manager scheduler kube-proxy kubelet; do
  cat >"$pki/$c.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: flotilla
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$pki/ca.crt"}
users:
- name: $c
  user: {client-certificate: "$pki/$c.crt", client-key: "$pki/$c.key"}
contexts:
- name: flotilla
  context: {cluster: flotilla, user: $c}
current-context: flotilla
KC
done
