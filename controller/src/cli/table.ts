import { agentsReleaseCommand, agentsUpgradeCommand } from './table-upgrade.js';
import { withBuiltins } from '../../../common/src/cli/dispatch.js';
import type { CliSpec, CommandSpec, FlagSpec } from '../../../common/src/cli/spec.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { bundleCommand, keyCommand, planCommand, registryCommand, rolloutCommand, runCommand, targetSpecs } from './table-delivery.js';

/**
 * The `ferry` command table: every command, subcommand and flag with its
 * help. The dispatcher (common/src/cli/dispatch.ts) parses with it before a
 * handler runs, and --help, `ferry completion` and docs/man/ferry.1 are
 * rendered from it. Handlers (cmd-*.ts) are wired to paths in main.ts.
 */

const json: FlagSpec = { type: 'boolean', help: 'print JSON records, one object per line (docs/json.md)' };
const selector: FlagSpec = { type: 'string', short: 'l', value: 'SELECTOR', help: 'hosts whose labels match, e.g. site=plant-7,role!=cloud' };

/** `controller start` settings that `controller install-service` also takes and passes on to the service. */
const startSettings: Record<string, FlagSpec> = {
  listen: { type: 'string', value: 'HOST:PORT', help: 'where agents and remote operators connect (default 0.0.0.0:7443)' },
  san: { type: 'string', multiple: true, value: 'NAME', help: 'an extra DNS name or IP in the server certificate' },
  advertise: { type: 'string', multiple: true, value: 'HOST:PORT', help: 'address written into join strings' },
  'admin-socket': { type: 'string', value: 'PATH', help: 'the local admin socket (default DATA/admin.sock)' },
  'http-addr': { type: 'string', value: 'HOST:PORT', help: '/metrics, /healthz and /readyz over plain HTTP (default 127.0.0.1 on the --listen port + 1; "off" for none)' },
  'registry-addr': { type: 'string', value: 'HOST:PORT', help: 'serve published images and files over HTTPS here (docs/registry.md; default off)' },
  'console-addr': { type: 'string', value: 'HOST:PORT', help: 'serve the web console over HTTPS here (default: off); see docs/console.md' },
  'lease-ttl': { type: 'string', value: 'DURATION', help: 'scheduler lease among replicas: another replica takes over this long after the holder stops renewing (default 10s)' },
  chunks: { type: 'string', value: 'DIR', help: 'chunk store (default DATA/chunks); replicas on one PostgreSQL store share one directory on shared storage (docs/ha.md)' },
};

const controllerCommand: CommandSpec = {
  name: 'controller', summary: 'the controller process',
  subcommands: [{
    name: 'start', summary: 'run the controller until SIGTERM',
    description: 'First start creates the CA, the server certificate (for --san names and this host\'s addresses) and the store, then prints the CA pin. Settings: defaults < --config YAML < FERRY_* environment < flags. One controller per data directory.',
    flags: {
      data: { type: 'string', value: 'DIR', help: 'data directory (default /var/lib/ferry as root)' },
      store: { type: 'string', value: 'URL', help: 'sqlite (default: DATA/ferry.db) or postgres://USER:PASSWORD@HOST:PORT/DB shared by replicas (docs/ha.md)' },
      ...startSettings,
      config: { type: 'string', value: 'FILE', help: 'settings file (YAML, same keys as the flags)' },
      heartbeat: { type: 'string', value: 'DURATION', help: 'agent heartbeat interval' },
      'agent-cert-ttl': { type: 'string', value: 'DURATION', help: 'life of agent certificates (default 72h)' },
      'agent-reauth-window': { type: 'string', value: 'DURATION', help: 'how long an unseen agent may come back by itself (default 180d)' },
      'job-retention': { type: 'string', value: 'DURATION', help: 'how long finished exec and plan runs stay in the job history (default 30d)' },
      'log-level': { type: 'string', value: 'LEVEL', help: 'debug, info, warn or error' },
      'console-session-ttl': { type: 'string', value: 'DURATION', help: 'life of a console browser session (default 8h)' },
    },
    examples: ['ferry controller start --data /var/lib/ferry --listen 0.0.0.0:7443 --san ferry.plant7.example',
      'FERRY_STORE=postgres://ferry:secret@db.plant7:5432/ferry ferry controller start --advertise ctl-a.plant7:7443'],
  }, {
    name: 'status', summary: 'the controller replicas: which holds the scheduler lease (epoch), sessions per replica', shared: true,
    description: 'Asks any replica; the answer comes from the store, so every replica gives the same picture. A single controller on SQLite shows itself as the one replica. See docs/ha.md.',
    flags: { json },
    examples: ['ferry controller status', 'ferry controller status --json | jq .leader'],
  }, {
    name: 'migrate-store', summary: 'copy a stopped SQLite controller\'s store into an empty PostgreSQL database, verified',
    description: 'Brings the SQLite store to this version\'s schema (as a start would), then copies every table into the PostgreSQL database in one transaction and checks each table\'s row count and contents on both sides; any difference rolls the copy back. '
      + 'Refuses a running controller (it holds the data directory for the whole copy) and a target database that holds any table. The SQLite store is not changed otherwise. '
      + 'Give the password in the URL or in PGPASSWORD. Then start the first replica on the same data directory with --store and --chunks (docs/ha.md).',
    flags: {
      data: { type: 'string', value: 'DIR', help: 'the stopped controller\'s data directory (default /var/lib/ferry as root; env FERRY_DATA)' },
      to: { type: 'string', value: 'URL', help: 'postgres://USER:PASSWORD@HOST:PORT/DB, an empty database' },
      json,
    },
    examples: ['PGPASSWORD=... ferry controller migrate-store --data /var/lib/ferry --to postgres://ferry@db.plant7:5432/ferry'],
  }, {
    name: 'install-service', summary: 'write a hardened systemd unit for `ferry controller start`, enable and start it',
    description: 'Checks that it runs as root and that systemd runs this host before it writes anything; the settings given here are validated as the service will see them (flags and --config; FERRY_* variables of this shell do not reach the service). '
      + 'The unit lets the controller write only its data directory and admin socket (ProtectSystem=strict), runs it with no capabilities (CAP_NET_BIND_SERVICE only for a port below 1024), NoNewPrivileges, private /tmp and devices, no kernel, clock or namespace access and @system-service system calls; it is not restarted on exit code 2 (a configuration error). '
      + 'A PostgreSQL store goes in the --config file (keep it 0600), not on the unit\'s command line, which every user can read. '
      + 'A chunk directory outside the data directory (--chunks, or chunks: in the config; a replica\'s shared directory) is made writable to the service too, and must exist already (mount the shared storage first). --dry-run prints the unit and changes nothing.',
    flags: {
      data: { type: 'string', value: 'DIR', help: 'data directory of the service (default /var/lib/ferry as root)' },
      config: { type: 'string', value: 'FILE', help: 'settings file the service reads (YAML, same keys as the start flags)' },
      // The service is started with these, as given here.
      ...startSettings,
      'log-level': { type: 'string', value: 'LEVEL', help: 'debug, info, warn or error' },
      'unit-dir': { type: 'string', value: 'DIR', help: 'where to write the unit (default /etc/systemd/system)' },
      name: { type: 'string', value: 'NAME', help: 'unit name (default ferry-controller)' },
      'no-start': { type: 'boolean', help: 'write the unit only (no systemctl)' },
      'dry-run': { type: 'boolean', help: 'print the unit to stdout and change nothing' },
    },
    examples: ['ferry controller install-service --data /var/lib/ferry --san ferry.plant7.example', 'ferry controller install-service --dry-run'],
  }, {
    name: 'uninstall-service', summary: 'stop, disable and remove the systemd unit (the data directory stays; a second run changes nothing)',
    flags: {
      'unit-dir': { type: 'string', value: 'DIR', help: 'where the unit is (default /etc/systemd/system)' },
      name: { type: 'string', value: 'NAME', help: 'unit name (default ferry-controller)' },
    },
    examples: ['ferry controller uninstall-service'],
  }, {
    name: 'backup', summary: 'write an encrypted backup of the controller\'s data (while it runs)',
    description: 'A consistent snapshot of the store (SQLite\'s online backup API, or pg_dump for a PostgreSQL store; the controllers keep running), the CA and server keys, the settings file given with --config and the chunk store, in one file encrypted with a passphrase (scrypt, AES-256-GCM), written 0600; an existing file is never replaced. '
      + 'The passphrase comes from --passphrase-file (mode 0600, first line) or FERRY_BACKUP_PASSPHRASE, never from the command line; at least 12 characters. See docs/disaster-recovery.md.',
    flags: {
      data: { type: 'string', value: 'DIR', help: 'the controller\'s data directory (default /var/lib/ferry as root; env FERRY_DATA)' },
      out: { type: 'string', value: 'FILE', help: 'the backup file to write (must not exist)' },
      config: { type: 'string', value: 'FILE', help: 'the controller\'s settings file, kept in the backup' },
      'passphrase-file': { type: 'string', value: 'FILE', help: 'file holding the passphrase (else FERRY_BACKUP_PASSPHRASE)' },
      store: { type: 'string', value: 'URL', help: 'the controller\'s store as given to start (default sqlite; env FERRY_STORE, or store: in --config): a PostgreSQL store is dumped with pg_dump' },
      chunks: { type: 'string', value: 'DIR', help: 'the chunk store as given to start (default DATA/chunks; env FERRY_CHUNKS, or chunks: in --config)' },
      'no-chunks': { type: 'boolean', help: 'leave the chunk store out (smaller; bundles must be pushed again after a restore)' },
      json,
    },
    examples: ['FERRY_BACKUP_PASSPHRASE=... ferry controller backup --out /srv/backups/ferry-2026-12-02.fbak', 'ferry controller backup --passphrase-file /root/ferry-backup.pass --out ferry.fbak --config /etc/ferry/controller.yaml'],
  }, {
    name: 'restore', summary: 'restore a backup into an empty data directory', args: 'FILE',
    description: 'Decrypts and checks the whole backup (passphrase, every block\'s authentication tag, the store\'s integrity) into a new directory beside DIR before DIR is touched: a wrong passphrase or a truncated or altered file changes nothing. '
      + 'A backup of a PostgreSQL store needs --store, an empty database: it is filled with pg_restore in one transaction after the rest of the backup checked out. '
      + 'DIR must be empty or missing unless --force, and is never replaced while a controller runs on it. Agents enrolled before the backup reconnect by themselves once the controller starts again on its old address. See docs/disaster-recovery.md.',
    flags: {
      data: { type: 'string', value: 'DIR', help: 'the data directory to restore into (default /var/lib/ferry as root; env FERRY_DATA)' },
      'passphrase-file': { type: 'string', value: 'FILE', help: 'file holding the passphrase (else FERRY_BACKUP_PASSPHRASE)' },
      force: { type: 'boolean', help: 'replace a data directory that is not empty (stop its controller first)' },
      store: { type: 'string', value: 'URL', help: 'for a backup of a PostgreSQL store: the empty database to restore it into (password in the URL or PGPASSWORD)' },
      json,
    },
    examples: ['ferry controller restore /srv/backups/ferry-2026-12-02.fbak --data /var/lib/ferry --passphrase-file /root/ferry-backup.pass'],
  }],
};

const tokenCommand: CommandSpec = {
  name: 'token', summary: 'join tokens for enrolling hosts',
  subcommands: [
    { name: 'create', summary: 'make a join string for a batch of hosts', shared: true,
      description: 'Prints the command field techs type on each host: ferry-agent join <join string> (address + token + CA pin, safe to paste unquoted). The secret is stored only as a hash and shown only now.',
      flags: {
        ttl: { type: 'string', value: 'DURATION', help: 'how long it can be used (default 1h)' },
        uses: { type: 'string', value: 'N', help: 'how many hosts may enroll with it (default 1)' },
        label: { type: 'string', multiple: true, value: 'KEY=VALUE', help: 'a label for every host enrolled with it' },
        json,
      },
      examples: ['ferry token create --ttl 2h --uses 200 --label site=plant-7 --label role=edge'] },
    { name: 'ls', summary: 'list tokens and their state', shared: true, flags: { json } },
    { name: 'revoke', summary: 'revoke a token (hosts already enrolled stay)', args: 'ID', shared: true, flags: { json } },
  ],
};

const agentsCommand: CommandSpec = {
  name: 'agents', summary: 'the fleet: list, label, revoke hosts',
  subcommands: [
    { name: 'ls', summary: 'list agents', shared: true,
      description: 'The default table fits the terminal (labels are cut); hostnames shared by several agents are marked with *.',
      flags: {
        selector, all: { type: 'boolean', help: 'include revoked agents' },
        state: { type: 'string', value: 'STATE', help: 'only online, offline or revoked agents' },
        sort: { type: 'string', value: 'KEY', help: 'hostname (default), id, state, last-seen or version' },
        output: { type: 'string', short: 'o', value: 'FORMAT', help: 'wide (every column), json or name (ids only)' },
        json,
      },
      examples: ['ferry agents ls --selector site=plant-7', 'ferry agents ls --state offline --sort last-seen', 'ferry agents ls -o name'] },
    { name: 'show', summary: 'one host: facts, labels, bundles, certificate expiry, last seen', args: 'ID|HOSTNAME', shared: true, flags: { json } },
    { name: 'rm', summary: 'forget a revoked agent (its jobs and rollouts keep their history)', args: 'ID', shared: true, flags: { json } },
    { name: 'label', summary: 'set or remove labels on agents', args: '[ID|HOSTNAME ...] [KEY=VALUE ...]', maxArgs: Infinity, shared: true,
      description: 'Agents are picked as every targeted command picks them: by id or hostname and/or --selector (the union), or --all. Labels are set as key=value and removed with --remove. The ferry/ prefix is reserved.',
      flags: { selector, all: { type: 'boolean', help: 'every enrolled agent' }, remove: { type: 'string', multiple: true, value: 'KEY', help: 'remove this label' }, json },
      examples: ['ferry agents label --selector site=plant-7 ring=canary', 'ferry agents label edge-7 ag-0123456789ab --remove ring', 'ferry agents label --all fleet=prod'] },
    { name: 'revoke', summary: 'revoke an agent: its session closes and it cannot reconnect', args: 'ID', shared: true, flags: { json } },
    { name: 'allow-reauth', summary: 'let an agent unseen beyond the re-authentication window back in', args: 'ID', shared: true, flags: { json } },
    agentsUpgradeCommand,
    agentsReleaseCommand,
  ],
};

const execCommand: CommandSpec = {
  name: 'exec', summary: 'run a command on matching hosts and stream its output', shared: true, passthrough: 'COMMAND [ARG ...]',
  description: 'Streams each host\'s output live as "host | line", then a summary table. Ctrl-C cancels the command on every host. Exit 1 if any host failed, timed out or was offline.',
  flags: {
    ...targetSpecs,
    timeout: { type: 'string', value: 'DURATION', help: 'kill the command after this long, e.g. 30s' },
    concurrency: { type: 'string', value: 'N', help: 'at most N hosts at once (default all)' },
    json,
  },
  examples: ['ferry exec --selector role=edge --timeout 30s -- uname -a'],
};

const operatorCommand: CommandSpec = {
  name: 'operator', summary: 'operator certificates for remote admin, and their roles',
  subcommands: [
    {
      name: 'cert', summary: 'issue a client certificate for remote admin', args: 'NAME', shared: true,
      description: 'The key is generated where this command runs; only a CSR goes to the controller. Writes operator.key, operator.crt and ca.crt to DIR. The certificate is a viewer (reads only) unless --role admin is given.',
      flags: {
        out: { type: 'string', value: 'DIR', help: 'where to write the key and certificates' },
        ttl: { type: 'string', value: 'DURATION', help: 'certificate life (default 720h)' },
        role: { type: 'string', value: 'ROLE', help: 'viewer (default: reads only) or admin (also every change)' },
        json,
      },
      examples: ['ferry operator cert alice --out ~/.ferry --role admin'],
    },
    {
      name: 'login', summary: 'print a single-use login link for the web console', args: '[NAME]', shared: true,
      description: 'The link opens one browser session (an HttpOnly cookie) for NAME (default: yourself; "local" on the admin socket) with the role given, and works once, before --ttl. Only the URL goes to stdout. Needs the controller started with --console-addr.',
      flags: {
        role: { type: 'string', value: 'ROLE', help: 'viewer (default: sees only) or admin (also acts)' },
        ttl: { type: 'string', value: 'DURATION', help: 'how long the link may be opened (default 10m, at most 24h)' },
      },
      examples: ['ferry operator login alice --role admin --ttl 5m'],
    },
    { name: 'ls', summary: 'list operator certificates: name, role, state, serial, expiry', shared: true, flags: { json } },
    { name: 'revoke', summary: 'revoke one certificate by serial, or every live one of a name', args: 'NAME|SERIAL', shared: true, flags: { json } },
  ],
};

const auditCommand: CommandSpec = {
  name: 'audit', summary: 'who changed what, and when',
  subcommands: [{
    name: 'ls', summary: 'the audit log, newest first', shared: true,
    flags: { limit: { type: 'string', value: 'N', help: 'at most N entries (default 100)' }, json },
  }],
};

const relayCommand: CommandSpec = {
  name: 'relay', summary: 'site relays: an agent that caches bundle chunks once for its site (docs/relays.md)',
  subcommands: [
    { name: 'enable', summary: 'make an enrolled agent a relay for the hosts a selector names', args: 'HOST', shared: true,
      description: 'HOST is an agent id or hostname. The hosts --serves selects fetch chunks through it first and fall back to the controller by themselves (relay down, stalled or sending bad bytes). '
        + 'The relay gets a server certificate with the relay role from the controller\'s CA (its key stays on the host), listens on --listen and keeps at most --cache-size of verified chunks on disk. Enabling again replaces the settings. Audited.',
      flags: {
        serves: { type: 'string', value: 'SELECTOR', help: 'the hosts it serves, e.g. site=plant-7' },
        'cache-size': { type: 'string', value: 'SIZE', help: 'bound on its chunk cache, e.g. 20G (default 10G, at least 64M)' },
        listen: { type: 'string', value: 'HOST:PORT', help: 'where the relay listens (default 0.0.0.0:7444; port 0: any free port)' },
        advertise: { type: 'string', value: 'HOST:PORT', help: 'address hosts dial when it is not the listen address' },
        'registry-listen': { type: 'string', value: 'HOST:PORT', help: 'also serve the registry and files endpoints to the site over HTTPS here (default: off; docs/relays.md)' },
        json,
      },
      examples: ['ferry relay enable edge-gw-7 --serves site=plant-7 --cache-size 20G', 'ferry relay enable edge-gw-7 --serves site=plant-7 --listen 10.7.0.2:7444',
        'ferry relay enable edge-gw-7 --serves site=plant-7 --registry-listen 0.0.0.0:5000'] },
    { name: 'disable', summary: 'stop using an agent as a relay (its hosts go back to the controller)', args: 'HOST', shared: true, flags: { json } },
  ],
};

const relaysCommand: CommandSpec = {
  name: 'relays', summary: 'list site relays with what they serve and their cache',
  subcommands: [{
    name: 'ls', summary: 'relays, the hosts they serve, cache use, hit ratio, bytes from upstream vs served, upstream rate', shared: true,
    description: 'Cache figures are the relay\'s last report (every few seconds while it serves); "-" until it made one.',
    flags: { json },
  }],
};

const jobsCommand: CommandSpec = {
  name: 'jobs', summary: 'job history: every exec and plan run, kept for --job-retention',
  subcommands: [
    { name: 'ls', summary: 'runs, newest first, with host counts by state', shared: true,
      flags: { kind: { type: 'string', value: 'KIND', help: 'exec or plan' }, limit: { type: 'string', value: 'N', help: 'at most N runs (default 50)' }, json } },
    { name: 'show', summary: 'one run: what, who, when, and each host\'s end', args: 'ID', shared: true, flags: { json } },
    { name: 'logs', summary: 'a run\'s output, step events and results', args: 'ID', shared: true,
      flags: { host: { type: 'string', value: 'HOST', help: 'one host, by hostname or agent id' }, json },
      examples: ['ferry jobs logs j-mx5v-1a2b3c4d --host edge-7'] },
  ],
};

/** The `ferry` CLI. Add a command: an entry in `commands` (or a subcommand in its group), and its handler in main.ts. */
export const FERRY_CLI: CliSpec = withBuiltins({
  name: 'ferry',
  version: FERRY_VERSION,
  summary: 'install and upgrade software on fleets of air-gapped hosts',
  description: 'ferry runs the Ferry controller and administers it: join tokens, the fleet of agents, signing keys, offline bundles, install plans, one-off commands and staged rollouts.',
  commands: [controllerCommand, tokenCommand, agentsCommand, execCommand, keyCommand, bundleCommand, registryCommand, relayCommand, relaysCommand, planCommand, runCommand, rolloutCommand, jobsCommand, operatorCommand, auditCommand],
  shared: {
    title: 'Connection flags',
    hoist: true,
    flags: {
      data: { type: 'string', value: 'DIR', help: 'the controller\'s data directory; its admin.sock is used (env FERRY_DATA)' },
      'admin-socket': { type: 'string', value: 'PATH', help: 'the admin socket itself (env FERRY_ADMIN_SOCKET)' },
      controller: { type: 'string', value: 'HOST:PORT', help: 'a remote controller, with an operator certificate (env FERRY_CONTROLLER)' },
      cert: { type: 'string', value: 'FILE', help: 'operator certificate for --controller (env FERRY_CERT)' },
      key: { type: 'string', value: 'FILE', help: 'operator key for --controller (env FERRY_KEY)' },
      ca: { type: 'string', value: 'FILE', help: 'the controller\'s CA for --controller (env FERRY_CA)' },
    },
  },
  notes: [
    { title: 'Reaching the controller', text: 'Every admin command talks to the controller\'s local socket DATA/admin.sock; pick DATA with --data or FERRY_DATA (default /var/lib/ferry as root). For remote admin, get an operator certificate with `ferry operator cert` and pass --controller, --cert, --key and --ca. Connection flags may also come before the command.' },
    { title: 'Selectors', text: 'key=value, key!=value, key (has it), !key (lacks it), key in (a,b), key notin (a,b); comma-separated terms must all hold, e.g. site in (plant-7,plant-9),role!=cloud. exec, run and bundle prefetch need --selector, --host or --all; --list-hosts shows who would be targeted.' },
  ],
  seeAlso: ['ferry-agent(1)'],
});
