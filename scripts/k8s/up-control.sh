# Sourced by up.sh: etcd and the control plane.
start etcd etcd --name flotilla-k8s --data-dir "$K8S_DIR/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster flotilla-k8s=http://127.0.0.1:2380 --listen-metrics-urls= \
  --quota-backend-bytes 1073741824
wait_for etcd 30 curl -sf http://127.0.0.1:2379/health
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 --secure-port=6443 --advertise-address="$NODE_IP" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" --service-cluster-ip-range="$K8S_SVC_CIDR" \
  --authorization-mode=Node,RBAC --allow-privileged=true \
  --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
  --kubelet-preferred-address-types=InternalIP \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --enable-admission-plugins=NodeRestriction --event-ttl=30m
wait_for kube-apiserver 90 curl -sf --cacert "$pki/ca.crt" "https://$NODE_IP:6443/readyz"
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$pki/controller-manager.kubeconfig" --authentication-kubeconfig="$pki/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$pki/controller-manager.kubeconfig" --bind-address=127.0.0.1 \
  --leader-elect=false --use-service-account-credentials=true \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --service-cluster-ip-range="$K8S_SVC_CIDR" --allocate-node-cidrs=false \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$pki/scheduler.kubeconfig" --authentication-kubeconfig="$pki/scheduler.kubeconfig" \
  --authorization-kubeconfig="$pki/scheduler.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false
