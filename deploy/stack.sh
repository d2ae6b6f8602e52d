#!/usr/bin/env bash
# Starts, stops and reports the local test stack: mosquitto plus a real single-node KRaft Kafka, on 127.0.0.1.
# SPDX-License-Identifier: Apache-2.0
#
# Usage:
#   deploy/stack.sh start   [all|kafka|mqtt]   start (or reuse) and wait until each answers
#   deploy/stack.sh stop    [all|kafka|mqtt] [--purge]
#                                             SIGTERM, then SIGKILL after 30 s; data stays
#                                             unless --purge (the jar cache always stays)
#   deploy/stack.sh restart [all|kafka|mqtt]   stop, then start (data kept)
#   deploy/stack.sh status  [all|kafka|mqtt]   exit 0 only if every service asked for is up
#   deploy/stack.sh env                       print `export` lines for the gateway and tests
#
# Targets beyond `all`: `cluster`, a replicated 3-broker KRaft cluster (each
# JVM both broker and controller, from the same jars; topics get replication
# factor 3 and min.insync.replicas=2 by default), and `broker1|broker2|broker3`,
# one of its brokers, for fault tests:
#   deploy/stack.sh start   cluster|brokerN      start (or reuse); a broker is ready once its
#                                                metadata names it, the cluster once each
#                                                broker's names all three
#   deploy/stack.sh stop    cluster|brokerN      SIGTERM (controlled shutdown), as above
#   deploy/stack.sh kill    cluster|brokerN      SIGKILL, as a crash would stop it
#   deploy/stack.sh status  cluster|brokerN
# `all` does not include the cluster.
#
# Environment:
#   TG_STACK_DIR              data, logs, pid files, generated configs (default <repo>/.stack)
#   TG_CACHE_DIR              Kafka jars fetched from Maven Central, kept across runs
#                             (default ${XDG_CACHE_HOME:-$HOME/.cache}/tumblegate)
#   TG_MQTT_PORT              mosquitto listener (default 1883)
#   TG_KAFKA_PORT             Kafka PLAINTEXT listener (default 9092)
#   TG_KAFKA_CONTROLLER_PORT  Kafka KRaft controller listener (default 9093)
#   TG_KAFKA_SASL_PORT        Kafka SASL_SSL listener: SASL PLAIN over TLS
#                             (default TG_KAFKA_PORT + 2, so 9094)
#   TG_CLUSTER_PORT           the cluster's broker N listens on this + N - 1
#                             (default 19092: 19092, 19093, 19094)
#   TG_CLUSTER_CONTROLLER_PORT  its controller N on this + N - 1 (default
#                             TG_CLUSTER_PORT + 100: 19192, 19193, 19194)
#   TG_CLUSTER_HEAP           each cluster JVM's -Xmx (default 320m)
#
# The SASL_SSL listener is for tests of the gateway's Kafka security: its CA,
# server certificate (for IP 127.0.0.1) and user's password are made once, at
# the first start, in <stack dir>/kafka/sasl; `env` names them.
#
# The Kafka broker runs from the jars listed in deploy/kafka/pom.xml. They are
# fetched with Maven once; later starts use the cache and touch no network.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)

readonly host=127.0.0.1
stack_dir=${TG_STACK_DIR:-$repo_dir/.stack}
cache_dir=${TG_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-$(cd ~ && pwd)}/.cache}/tumblegate}
mqtt_port=${TG_MQTT_PORT:-1883}
kafka_port=${TG_KAFKA_PORT:-9092}
kafka_controller_port=${TG_KAFKA_CONTROLLER_PORT:-9093}
kafka_sasl_port=${TG_KAFKA_SASL_PORT:-$((kafka_port + 2))}
cluster_port=${TG_CLUSTER_PORT:-19092}
cluster_controller_port=${TG_CLUSTER_CONTROLLER_PORT:-$((cluster_port + 100))}
cluster_heap=${TG_CLUSTER_HEAP:-320m}
readonly cluster_size=3

readonly mqtt_start_timeout=15 # seconds
readonly kafka_start_timeout=90
readonly stop_timeout=30

say() { printf 'stack: %s\n' "$*"; }
die() {
	printf 'stack: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat <<EOF
usage: deploy/stack.sh start|stop|status|restart [all|kafka|mqtt|cluster|broker1|broker2|broker3]
       deploy/stack.sh kill cluster|broker1|broker2|broker3   SIGKILL
       deploy/stack.sh stop [all|kafka|mqtt] --purge   also delete the stack's data
       deploy/stack.sh env                             print export lines
EOF
}

for port_var in mqtt_port kafka_port kafka_controller_port kafka_sasl_port cluster_port \
	cluster_controller_port; do
	if [[ ! ${!port_var} =~ ^[0-9]+$ ]] || ((${!port_var} < 1 || ${!port_var} > 65535)); then
		die "$port_var must be a TCP port number, got '${!port_var}'"
	fi
done

# Absolute paths: they go into generated configs and into the command lines
# that identify our processes.
mkdir -p "$stack_dir"
stack_dir=$(cd "$stack_dir" && pwd)

mqtt_dir=$stack_dir/mosquitto
mqtt_conf=$mqtt_dir/mosquitto.conf
mqtt_pid=$mqtt_dir/mosquitto.pid
mqtt_log=$mqtt_dir/mosquitto.log

kafka_dir=$stack_dir/kafka
kafka_props=$kafka_dir/server.properties
kafka_log4j=$kafka_dir/log4j2.properties
kafka_pid=$kafka_dir/kafka.pid
kafka_logs=$kafka_dir/logs
kafka_data=$kafka_dir/data
kafka_sasl=$kafka_dir/sasl
readonly kafka_sasl_user=tumblegate

kafka_pom=$script_dir/kafka/pom.xml

cluster_dir=$stack_dir/cluster

# --- helpers ----------------------------------------------------------------

# True when something accepts TCP connections on host:$1.
port_open() {
	(: <>"/dev/tcp/$host/$1") 2>/dev/null
}

# Best-effort description of who listens on port $1 (needs ss from iproute2).
port_owner() {
	local owner=""
	if command -v ss >/dev/null 2>&1; then
		owner=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:.*' | head -n 1 || true)
	fi
	printf '%s' "${owner:-unknown process}"
}

# Prints the pid recorded in pid file $1 and succeeds if that process is alive
# and its command line contains $2, so a recycled pid is not mistaken for ours.
service_pid() {
	local pid_file=$1 marker=$2 pid cmdline
	[[ -f $pid_file ]] || return 1
	pid=$(<"$pid_file")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$marker"* ]] || return 1
	printf '%s\n' "$pid"
}

run_install_deps() {
	say "missing $1; running deploy/install-deps.sh"
	bash "$script_dir/install-deps.sh"
	hash -r
}

# Ensures the commands named in "$@" exist, running install-deps.sh once if not.
need_commands() {
	local cmd missing=()
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
	done
	((${#missing[@]} == 0)) && return 0
	run_install_deps "${missing[*]}"
	for cmd in "${missing[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still missing after install-deps.sh"
	done
}

# Debian installs the broker in /usr/sbin, which a normal user's PATH lacks.
mosquitto_bin() {
	command -v mosquitto 2>/dev/null || { [[ -x /usr/sbin/mosquitto ]] && echo /usr/sbin/mosquitto; }
}

java_bin() {
	if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
		echo "$JAVA_HOME/bin/java"
	else
		echo java
	fi
}

# Starts "$@" detached in its own session with its output appended to $log,
# and records its pid in $pid_file. The lock's fd 9 is closed in the child so
# a long-lived service never holds the stack lock.
launch() {
	local pid_file=$1 log=$2 workdir=$3
	shift 3
	(cd "$workdir" && exec setsid "$@" </dev/null >>"$log" 2>&1 9>&-) &
	echo "$!" >"$pid_file"
}

# Waits until "$check" passes; fails early if the process in $pid_file dies.
# Usage: wait_ready NAME PID_FILE MARKER TIMEOUT CHECK_FUNCTION
launched_alive() {
	local pid state
	pid=$(<"$1") || return 1
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
	state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

wait_ready() {
	local name=$1 pid_file=$2 marker=$3 timeout=$4 check=$5
	local deadline=$((SECONDS + timeout))
	while ! "$check"; do
		# Alive means the process exists and is not a zombie. Its command line
		# is not checked here: right after launch the child may not have
		# exec'd the server yet, and would look like something else.
		if ! launched_alive "$pid_file"; then
			return 2
		fi
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 0.3
	done
}

# wait_ready_or_die NAME PID_FILE MARKER TIMEOUT CHECK WHAT LOG...: as
# wait_ready; on failure, the logs' last lines and an error: the process
# exited, or WHAT after TIMEOUT s.
wait_ready_or_die() {
	local name=$1 pid_file=$2 marker=$3 timeout=$4 check=$5 what=$6 rc=0
	shift 6
	wait_ready "$name" "$pid_file" "$marker" "$timeout" "$check" || rc=$?
	((rc == 0)) && return 0
	show_log_tail "$@"
	((rc == 2)) && die "$name: exited during start-up"
	die "$name: $what after $timeout s (still running)"
}

# Graceful stop: SIGTERM, up to $stop_timeout seconds, then SIGKILL.
stop_service() {
	local name=$1 pid_file=$2 marker=$3 pid deadline
	if ! pid=$(service_pid "$pid_file" "$marker"); then
		rm -f "$pid_file"
		say "$name: not running"
		return 0
	fi
	say "$name: stopping (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + stop_timeout))
	while service_pid "$pid_file" "$marker" >/dev/null; do
		if ((SECONDS >= deadline)); then
			say "$name: still running after ${stop_timeout} s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.5
			break
		fi
		sleep 0.2
	done
	rm -f "$pid_file"
	say "$name: stopped"
}

show_log_tail() {
	local f
	for f in "$@"; do
		[[ -s $f ]] || continue
		printf 'stack: --- last lines of %s ---\n' "$f" >&2
		tail -n 15 "$f" >&2
	done
}

# --- mosquitto --------------------------------------------------------------

# A real MQTT exchange: CONNECT, SUBSCRIBE, wait for SUBACK (-E), DISCONNECT.
mqtt_healthy() {
	port_open "$mqtt_port" &&
		mosquitto_sub -h "$host" -p "$mqtt_port" -i "tg-stack-probe-$$" \
			-t tumblegate/stack/probe -E -W 3 >/dev/null 2>&1
}

write_mqtt_conf() {
	mkdir -p "$mqtt_dir/data"
	cat >"$mqtt_conf" <<EOF
# mosquitto for the tumblegate local test stack. Generated by deploy/stack.sh
# on every start: edit the script, not this file.
listener $mqtt_port $host
allow_anonymous true

# Started as root, mosquitto would switch to user 'mosquitto', which cannot
# write this stack's data and log dirs (owned by whoever runs the script).
# Naming the current user keeps it as is: as root that is 'root' (no switch);
# as anyone else mosquitto never changes user anyway.
user $(id -un)

# Persistent sessions and their queued QoS 1/2 messages must survive a broker
# restart (fault-injection tests). mosquitto writes its database only on a
# clean exit and every autosave_interval seconds, so SIGTERM loses nothing and
# a SIGKILL loses at most the last 5 s. A shorter interval would rewrite the
# whole database that often and stall the single-threaded broker while large
# queues build up under load tests.
persistence true
persistence_location $mqtt_dir/data
persistence_file mosquitto.db
autosave_interval 5

# The defaults (1000 queued messages per client, 20 in flight) silently drop
# QoS 1 messages as soon as a subscriber lags; the gateway must see every one.
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 1000

log_dest file $mqtt_log
log_type error
log_type warning
log_type notice
log_type information
log_timestamp_format %Y-%m-%dT%H:%M:%S
connection_messages true
EOF
}

start_mqtt() {
	local pid bin rc
	need_commands mosquitto_sub mosquitto_pub
	if ! bin=$(mosquitto_bin); then
		run_install_deps mosquitto
		bin=$(mosquitto_bin) || die "mosquitto still missing after install-deps.sh"
	fi

	if pid=$(service_pid "$mqtt_pid" "$mqtt_conf"); then
		if wait_ready mqtt "$mqtt_pid" "$mqtt_conf" "$mqtt_start_timeout" mqtt_healthy; then
			say "mqtt: already running (pid $pid) at tcp://$host:$mqtt_port"
			return 0
		fi
		die "mqtt: mosquitto pid $pid is running but not answering on $host:$mqtt_port; see $mqtt_log or run 'deploy/stack.sh stop mqtt'"
	fi
	if [[ -f $mqtt_pid ]]; then
		say "mqtt: removing stale pid file"
		rm -f "$mqtt_pid"
	fi
	if port_open "$mqtt_port"; then
		die "mqtt: port $host:$mqtt_port is already in use by $(port_owner "$mqtt_port"); stop it or set TG_MQTT_PORT"
	fi

	write_mqtt_conf
	say "mqtt: starting mosquitto on $host:$mqtt_port"
	launch "$mqtt_pid" "$mqtt_dir/mosquitto.out" "$mqtt_dir" "$bin" -c "$mqtt_conf"
	rc=0
	wait_ready mqtt "$mqtt_pid" "$mqtt_conf" "$mqtt_start_timeout" mqtt_healthy || rc=$?
	if ((rc != 0)); then
		show_log_tail "$mqtt_dir/mosquitto.out" "$mqtt_log"
		((rc == 2)) && die "mqtt: mosquitto exited during start-up"
		die "mqtt: mosquitto not answering after ${mqtt_start_timeout} s"
	fi
	say "mqtt: up at tcp://$host:$mqtt_port (pid $(<"$mqtt_pid"))"
}

# --- Kafka ------------------------------------------------------------------

kafka_version() {
	sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$kafka_pom" | head -n 1
}

# Prints the directory holding the broker's jars, fetching them once. The
# directory name carries a hash of the pom, so editing the pom refetches.
kafka_jar_dir() {
	local version hash dir tmp
	version=$(kafka_version)
	hash=$(sha256sum "$kafka_pom" | cut -c 1-12)
	dir=$cache_dir/kafka-$version-$hash
	if [[ -f $dir/.complete && -d $dir/libs ]]; then
		printf '%s\n' "$dir"
		return 0
	fi
	need_commands mvn >&2
	say "kafka: fetching Kafka $version jars from Maven Central into $dir (once)" >&2
	mkdir -p "$cache_dir"
	tmp=$(mktemp -d "$cache_dir/.fetch.XXXXXX")
	# Maven's output is kept out of the way unless it fails.
	if ! mvn -B -Dstyle.color=never -f "$kafka_pom" \
		dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
		tail -n 30 "$tmp/mvn.log" >&2
		rm -rf "$tmp"
		die "kafka: Maven could not fetch the jars listed in $kafka_pom"
	fi
	touch "$tmp/.complete"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	printf '%s\n' "$dir"
}

# --- the SASL_SSL listener's material ----------------------------------------

# A CA and a server certificate for 127.0.0.1, in the PEM keystore format
# Kafka reads (ssl.keystore.type=PEM: an unencrypted PKCS#8 key and the
# certificate chain in one file), remade when missing or within a day of
# expiry; and a random password for the SASL user, made once.
ensure_sasl_material() {
	local d=$kafka_sasl
	need_commands openssl
	mkdir -p "$d"
	chmod 700 "$d"
	if [[ ! -s $d/keystore.pem ]] || ! openssl x509 -checkend 86400 -noout -in "$d/server.pem" >/dev/null 2>&1; then
		say "kafka: making a CA and a certificate for $host in $d"
		(
			set -e
			openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=tumblegate stack CA" \
				-keyout "$d/ca.key" -out "$d/ca.pem"
			openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout "$d/server.key" -out "$d/server.csr"
			printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$host" >"$d/server.ext"
			openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
				-days 825 -extfile "$d/server.ext" -out "$d/server.pem"
			openssl pkcs8 -topk8 -nocrypt -in "$d/server.key" -out "$d/server.pk8"
			cat "$d/server.pk8" "$d/server.pem" "$d/ca.pem" >"$d/keystore.pem"
		) >"$d/openssl.log" 2>&1 || {
			show_log_tail "$d/openssl.log"
			die "kafka: making the SASL_SSL listener's certificates failed"
		}
	fi
	if [[ ! -s $d/password ]]; then
		(umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$d/password")
	fi
}

# The broker is usable once its metadata lists itself. The output is captured
# rather than piped into `grep -q`, whose early exit could SIGPIPE kcat and,
# under pipefail, fail the check.
kafka_healthy() {
	local metadata
	port_open "$kafka_port" || return 1
	port_open "$kafka_sasl_port" || return 1
	metadata=$(kcat -L -b "$host:$kafka_port" -m 3 2>/dev/null) || return 1
	[[ $metadata == *"broker 1 at $host:$kafka_port"* ]]
}

# write_kafka_log4j FILE LOGS_DIR: log4j2 for a broker logging into LOGS_DIR.
write_kafka_log4j() {
	cat >"$1" <<EOF
# log4j2 for the test stack's Kafka broker. Generated by deploy/stack.sh.
status = warn
appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = $2/server.log
appender.server.filePattern = $2/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 50MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = server
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
EOF
}

write_kafka_conf() {
	mkdir -p "$kafka_logs" "$kafka_data"
	# It holds the SASL user's password.
	touch "$kafka_props"
	chmod 600 "$kafka_props"
	cat >"$kafka_props" <<EOF
# Single-node Kafka (KRaft, combined broker + controller) for the tumblegate
# local test stack. Generated by deploy/stack.sh on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$kafka_controller_port
listeners=PLAINTEXT://$host:$kafka_port,CONTROLLER://$host:$kafka_controller_port,SASL_SSL://$host:$kafka_sasl_port
advertised.listeners=PLAINTEXT://$host:$kafka_port,SASL_SSL://$host:$kafka_sasl_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$kafka_data

# SASL_SSL: user name and password (SASL PLAIN) over TLS, for tests of
# clients' Kafka security; the plaintext listener above stays as it is for
# everything else. PLAIN rather than SCRAM: Kafka 4 checks the SCRAM nonce
# strictly, and librdkafka before 2.6.1 (Debian 12 has 2.0.2) gets it wrong
# (librdkafka#4895), so SCRAM would fail here for any librdkafka client.
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$kafka_sasl_user="$(<"$kafka_sasl/password")";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$kafka_sasl/keystore.pem

# One broker: every internal topic gets a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

auto.create.topics.enable=true
num.partitions=3
# Tests start consumers against a fresh group; do not make them wait 3 s.
group.initial.rebalance.delay.ms=0
EOF
	write_kafka_log4j "$kafka_log4j" "$kafka_logs"
}

# A random cluster id in Kafka's Uuid form: 16 bytes, URL-safe base64, no
# padding, not starting with '-' (Kafka's own generator avoids that too).
kafka_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id != -* ]] && break
	done
	printf '%s\n' "$id"
}

# kafka_jvm_opts XMS XMX LOG4J LOGS_DIR JAR_DIR: sets the array jvm.
kafka_jvm_opts() {
	jvm=("-Xms$1" "-Xmx$2" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
		"-Dlog4j2.configurationFile=$3" "-Dkafka.logs.dir=$4"
		-cp "$5/libs/*")
}

start_kafka() {
	local pid jars java rc started id
	need_commands kcat
	java=$(java_bin)
	command -v "$java" >/dev/null 2>&1 || need_commands java
	jars=$(kafka_jar_dir)

	if pid=$(service_pid "$kafka_pid" "$kafka_props"); then
		if wait_ready kafka "$kafka_pid" "$kafka_props" "$kafka_start_timeout" kafka_healthy; then
			say "kafka: already running (pid $pid) at $host:$kafka_port"
			return 0
		fi
		die "kafka: pid $pid is running but not answering on $host:$kafka_port; see $kafka_logs/server.log or run 'deploy/stack.sh stop kafka'"
	fi
	if [[ -f $kafka_pid ]]; then
		say "kafka: removing stale pid file"
		rm -f "$kafka_pid"
	fi
	local port
	for port in "$kafka_port" "$kafka_controller_port" "$kafka_sasl_port"; do
		if port_open "$port"; then
			die "kafka: port $host:$port is already in use by $(port_owner "$port"); stop it or set TG_KAFKA_PORT / TG_KAFKA_CONTROLLER_PORT / TG_KAFKA_SASL_PORT"
		fi
	done

	ensure_sasl_material
	write_kafka_conf
	local jvm
	kafka_jvm_opts 256m 768m "$kafka_log4j" "$kafka_logs" "$jars"

	if [[ ! -f $kafka_data/meta.properties ]]; then
		id=$(kafka_cluster_id)
		say "kafka: formatting storage in $kafka_data (cluster id $id)"
		if ! "$java" "${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted \
			-t "$id" -c "$kafka_props" >>"$kafka_logs/format.out" 2>&1; then
			show_log_tail "$kafka_logs/format.out"
			die "kafka: formatting the storage failed"
		fi
	fi

	say "kafka: starting Kafka $(kafka_version) on $host:$kafka_port (controller $host:$kafka_controller_port)"
	started=$SECONDS
	launch "$kafka_pid" "$kafka_logs/kafka.out" "$kafka_dir" "$java" "${jvm[@]}" kafka.Kafka "$kafka_props"
	rc=0
	wait_ready kafka "$kafka_pid" "$kafka_props" "$kafka_start_timeout" kafka_healthy || rc=$?
	if ((rc != 0)); then
		show_log_tail "$kafka_logs/kafka.out" "$kafka_logs/server.log"
		((rc == 2)) && die "kafka: the broker exited during start-up"
		die "kafka: broker metadata not available after ${kafka_start_timeout} s (still running; 'deploy/stack.sh stop kafka' to end it)"
	fi
	say "kafka: up at $host:$kafka_port, SASL_SSL at $host:$kafka_sasl_port (pid $(<"$kafka_pid"), ready in $((SECONDS - started)) s)"
}

# --- the 3-broker cluster ----------------------------------------------------

# Broker N (1..3): its directory, ports and files.
broker_dir() { printf '%s/broker%s' "$cluster_dir" "$1"; }
broker_port() { printf '%s' "$((cluster_port + $1 - 1))"; }
broker_controller_port() { printf '%s' "$((cluster_controller_port + $1 - 1))"; }
broker_props() { printf '%s/server.properties' "$(broker_dir "$1")"; }
broker_pid() { printf '%s/kafka.pid' "$(broker_dir "$1")"; }

# host:port of every broker, comma-separated: the clients' bootstrap list.
cluster_brokers() {
	local n list=""
	for ((n = 1; n <= cluster_size; n++)); do list+=${list:+,}$host:$(broker_port "$n"); done
	printf '%s' "$list"
}

# Broker $healthy_broker is up once its own metadata names it (it is
# registered with the controller quorum and unfenced) and every broker in
# $healthy_peers (the whole cluster when it starts at once).
broker_healthy() {
	local n port metadata
	port=$(broker_port "$healthy_broker")
	port_open "$port" || return 1
	metadata=$(kcat -L -b "$host:$port" -m 3 2>/dev/null) || return 1
	for n in $healthy_broker ${healthy_peers:-}; do
		[[ $metadata == *"broker $n at $host:$(broker_port "$n")"* ]] || return 1
	done
}

write_broker_conf() {
	local n=$1 dir voters="" i
	dir=$(broker_dir "$n")
	mkdir -p "$dir/logs" "$dir/data"
	for ((i = 1; i <= cluster_size; i++)); do
		voters+=${voters:+,}$i@$host:$(broker_controller_port "$i")
	done
	cat >"$(broker_props "$n")" <<EOF
# Broker $n of the tumblegate test stack's 3-broker KRaft cluster (each node
# broker and controller). Generated by deploy/stack.sh on every start.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://$host:$(broker_port "$n"),CONTROLLER://$host:$(broker_controller_port "$n")
advertised.listeners=PLAINTEXT://$host:$(broker_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data

# Every topic on all three brokers; a write with acks=all needs two of them
# in sync, so one broker may fail or restart without stopping writes, and
# two down stall them rather than leave a write on one disk.
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
unclean.leader.election.enable=false

# A killed broker is fenced, and its partitions get new leaders, after 3 s
# without a heartbeat rather than the default 9 s.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

# Two cores for three JVMs: fewer threads than the defaults.
num.network.threads=2
num.io.threads=4
background.threads=4

auto.create.topics.enable=true
num.partitions=3
group.initial.rebalance.delay.ms=0
EOF
	write_kafka_log4j "$dir/log4j2.properties" "$dir/logs"
}

start_broker() {
	local n=$1 dir props pid_file pid jars java port started jvm id_file
	need_commands kcat
	java=$(java_bin)
	command -v "$java" >/dev/null 2>&1 || need_commands java
	jars=$(kafka_jar_dir)
	dir=$(broker_dir "$n") props=$(broker_props "$n") pid_file=$(broker_pid "$n")
	healthy_broker=$n

	if pid=$(service_pid "$pid_file" "$props"); then
		if wait_ready "broker$n" "$pid_file" "$props" "$kafka_start_timeout" broker_healthy; then
			say "broker$n: already running (pid $pid) at $host:$(broker_port "$n")"
			return 0
		fi
		die "broker$n: pid $pid is running but not in the cluster's metadata; see $dir/logs/server.log"
	fi
	rm -f "$pid_file"
	for port in "$(broker_port "$n")" "$(broker_controller_port "$n")"; do
		if port_open "$port"; then
			die "broker$n: port $host:$port is already in use by $(port_owner "$port"); stop it or set TG_CLUSTER_PORT / TG_CLUSTER_CONTROLLER_PORT"
		fi
	done

	write_broker_conf "$n"
	kafka_jvm_opts 128m "$cluster_heap" "$dir/log4j2.properties" "$dir/logs" "$jars"
	# One cluster id for all three, made with the first node's storage.
	id_file=$cluster_dir/cluster.id
	[[ -s $id_file ]] || kafka_cluster_id >"$id_file"
	if [[ ! -f $dir/data/meta.properties ]]; then
		say "broker$n: formatting storage in $dir/data (cluster id $(<"$id_file"))"
		if ! "$java" "${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted \
			-t "$(<"$id_file")" -c "$props" >>"$dir/logs/format.out" 2>&1; then
			show_log_tail "$dir/logs/format.out"
			die "broker$n: formatting the storage failed"
		fi
	fi
	say "broker$n: starting on $host:$(broker_port "$n") (controller $host:$(broker_controller_port "$n"), heap $cluster_heap)"
	started=$SECONDS
	launch "$pid_file" "$dir/logs/kafka.out" "$dir" "$java" "${jvm[@]}" kafka.Kafka "$props"
	# A lone node cannot be ready (its metadata needs a quorum and peers):
	# when the whole cluster starts, the caller waits for all of them.
	[[ ${defer_ready:-0} == 1 ]] && return 0
	wait_ready_or_die "broker$n" "$pid_file" "$props" "$kafka_start_timeout" broker_healthy \
		"not in the cluster's metadata" "$dir/logs/kafka.out" "$dir/logs/server.log"
	say "broker$n: up (pid $(<"$pid_file"), ready in $((SECONDS - started)) s)"
}

start_cluster() {
	local n started=$SECONDS
	mkdir -p "$cluster_dir"
	for ((n = 1; n <= cluster_size; n++)); do defer_ready=1 start_broker "$n"; done
	healthy_peers=$(seq 1 "$cluster_size")
	for ((n = 1; n <= cluster_size; n++)); do
		healthy_broker=$n
		wait_ready_or_die "broker$n" "$(broker_pid "$n")" "$(broker_props "$n")" \
			"$kafka_start_timeout" broker_healthy "metadata does not list the whole cluster" \
			"$(broker_dir "$n")/logs/kafka.out" "$(broker_dir "$n")/logs/server.log"
	done
	say "cluster: up at $(cluster_brokers) (ready in $((SECONDS - started)) s)"
}

stop_broker() {
	stop_service "broker$1" "$(broker_pid "$1")" "$(broker_props "$1")"
}

kill_broker() {
	local pid
	if pid=$(service_pid "$(broker_pid "$1")" "$(broker_props "$1")"); then
		kill -KILL "$pid"
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
		rm -f "$(broker_pid "$1")"
		say "broker$1: killed (pid $pid)"
	else
		say "broker$1: not running"
	fi
}

# --- commands ---------------------------------------------------------------

stop_one() {
	local n
	case $1 in
	mqtt) stop_service mqtt "$mqtt_pid" "$mqtt_conf" ;;
	kafka) stop_service kafka "$kafka_pid" "$kafka_props" ;;
	broker[1-3]) stop_broker "${1#broker}" ;;
	cluster)
		# All at once: the last broker's controlled shutdown would wait
		# for a controller quorum that the first two took with them.
		for ((n = 1; n <= cluster_size; n++)); do stop_broker "$n" & done
		wait
		;;
	esac
	if ((purge)); then
		case $1 in
		mqtt) rm -rf "$mqtt_dir" ;;
		kafka) rm -rf "$kafka_dir" ;;
		cluster) rm -rf "$cluster_dir" ;;
		broker[1-3]) rm -rf "$(broker_dir "${1#broker}")" ;;
		esac
		say "$1: data purged"
	fi
}

# Prints one status line; succeeds if the service is up and answering.
status_one() {
	local name=$1 pid_file marker port check pid
	case $name in
	mqtt) pid_file=$mqtt_pid marker=$mqtt_conf port=$mqtt_port check=mqtt_healthy ;;
	kafka) pid_file=$kafka_pid marker=$kafka_props port=$kafka_port check=kafka_healthy ;;
	broker[1-3])
		healthy_broker=${name#broker}
		pid_file=$(broker_pid "$healthy_broker") marker=$(broker_props "$healthy_broker")
		port=$(broker_port "$healthy_broker") check=broker_healthy
		;;
	esac
	if pid=$(service_pid "$pid_file" "$marker"); then
		if "$check"; then
			printf '%-6s up    %-16s pid %s\n' "$name" "$host:$port" "$pid"
			return 0
		fi
		printf '%-6s down  %-16s pid %s is running but not answering\n' "$name" "$host:$port" "$pid"
		return 1
	fi
	if port_open "$port"; then
		printf '%-6s down  %-16s port held by %s\n' "$name" "$host:$port" "$(port_owner "$port")"
	else
		printf '%-6s down  %s\n' "$name" "$host:$port"
	fi
	return 1
}

# One start/stop at a time per stack dir (ctest fixtures may race).
take_lock() {
	exec 9>>"$stack_dir/.lock"
	flock -w 300 9 || die "another deploy/stack.sh holds $stack_dir/.lock"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
target=all
purge=0
for arg in "$@"; do
	case $arg in
	all | kafka | mqtt | cluster | broker[1-3]) target=$arg ;;
	--purge)
		[[ $cmd == stop ]] || die "--purge goes with 'stop' only"
		purge=1
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

case $target in
all) services=(mqtt kafka) ;;
*) services=("$target") ;;
esac
# Each broker's own status line, and only a cluster or its brokers killed.
[[ $cmd == status && $target == cluster ]] && services=(broker1 broker2 broker3)
[[ $cmd == kill && $target != cluster && $target != broker[1-3] ]] &&
	die "kill is for the cluster and its brokers (fault tests); use stop for $target"

start_one() {
	case $1 in
	broker[1-3]) start_broker "${1#broker}" ;;
	*) "start_$1" ;;
	esac
}

case $cmd in
start)
	take_lock
	for svc in "${services[@]}"; do start_one "$svc"; done
	;;
kill)
	take_lock
	case $target in
	cluster) for ((n = 1; n <= cluster_size; n++)); do kill_broker "$n"; done ;;
	*) kill_broker "${target#broker}" ;;
	esac
	;;
stop)
	take_lock
	for ((i = ${#services[@]} - 1; i >= 0; i--)); do stop_one "${services[i]}"; done
	;;
restart)
	take_lock
	for ((i = ${#services[@]} - 1; i >= 0; i--)); do stop_one "${services[i]}"; done
	for svc in "${services[@]}"; do start_one "$svc"; done
	;;
status)
	rc=0
	for svc in "${services[@]}"; do status_one "$svc" || rc=1; done
	exit "$rc"
	;;
env)
	printf 'export TG_MQTT_URI=tcp://%s:%s\n' "$host" "$mqtt_port"
	printf 'export TG_KAFKA_BROKERS=%s:%s\n' "$host" "$kafka_port"
	# SASL_SSL (SASL PLAIN over TLS): made at the first 'start kafka'.
	printf 'export TG_KAFKA_SASL_BROKERS=%s:%s\n' "$host" "$kafka_sasl_port"
	printf 'export TG_KAFKA_SASL_USER=%s\n' "$kafka_sasl_user"
	printf 'export TG_KAFKA_SASL_PASSWORD=%q\n' "$(cat "$kafka_sasl/password" 2>/dev/null)"
	printf 'export TG_KAFKA_CA=%q\n' "$kafka_sasl/ca.pem"
	printf 'export TG_CLUSTER_BROKERS=%s\n' "$(cluster_brokers)"
	;;
-h | --help | help)
	usage
	;;
*)
	usage >&2
	exit 2
	;;
esac
