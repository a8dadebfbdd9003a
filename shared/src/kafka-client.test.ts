// The Kafka connection settings routers and nodes share (issue 15, item 3): CHAT_KAFKA_SASL_* and
// CHAT_KAFKA_TLS* mapped to kafkajs's `ssl` and `sasl`, every incomplete combination refused at once, and
// a refused login told apart from an outage.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isChatError } from './errors.js';
import { kafkaConnectionOptions, kafkaRefusal, type KafkaAuthConfig } from './kafka-client.js';

const none: KafkaAuthConfig = {
  kafkaSaslMechanism: 'none',
  kafkaSaslUsername: '',
  kafkaSaslPassword: '',
  kafkaSaslPasswordFile: '',
  kafkaTls: false,
  kafkaTlsCaFile: '',
  kafkaTlsCertFile: '',
  kafkaTlsKeyFile: '',
};

const files: Record<string, string> = {
  '/run/secrets/kafka-password': 'from-the-file\n',
  '/etc/kafka/ca.pem': 'CA PEM',
  '/etc/kafka/client.pem': 'CERT PEM',
  '/etc/kafka/client.key': 'KEY PEM',
};
const readFile = (path: string) => {
  const text = files[path];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
  return text;
};

/** The problems a CONFIG_ERR_INVALID lists. */
function problemsOf(config: Partial<KafkaAuthConfig>): string[] {
  try {
    kafkaConnectionOptions({ ...none, ...config }, readFile);
  } catch (err) {
    assert.ok(isChatError(err, 'CONFIG_ERR_INVALID'));
    return err.details.problems as string[];
  }
  return assert.fail('expected CONFIG_ERR_INVALID');
}

describe('kafkaConnectionOptions', () => {
  test('nothing set: plaintext without credentials, as before', () => {
    assert.deepEqual(kafkaConnectionOptions(none, readFile), {});
  });

  test('every SASL mechanism, with the password from the environment or from a file', () => {
    for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
      assert.deepEqual(
        kafkaConnectionOptions(
          { ...none, kafkaSaslMechanism: mechanism, kafkaSaslUsername: 'chat', kafkaSaslPassword: 'pw' },
          readFile,
        ),
        { sasl: { mechanism, username: 'chat', password: 'pw' } },
      );
    }
    const fromFile = kafkaConnectionOptions(
      {
        ...none,
        kafkaSaslMechanism: 'scram-sha-512',
        kafkaSaslUsername: 'chat',
        kafkaSaslPasswordFile: '/run/secrets/kafka-password',
      },
      readFile,
    );
    assert.equal(fromFile.sasl?.password, 'from-the-file', 'the trailing newline is not part of it');
  });

  test('TLS: system CAs, a CA file, and a client certificate for mutual TLS', () => {
    assert.deepEqual(kafkaConnectionOptions({ ...none, kafkaTls: true }, readFile), {
      ssl: { rejectUnauthorized: true },
    });
    assert.deepEqual(
      kafkaConnectionOptions(
        {
          ...none,
          kafkaTlsCaFile: '/etc/kafka/ca.pem',
          kafkaTlsCertFile: '/etc/kafka/client.pem',
          kafkaTlsKeyFile: '/etc/kafka/client.key',
        },
        readFile,
      ),
      { ssl: { rejectUnauthorized: true, ca: ['CA PEM'], cert: 'CERT PEM', key: 'KEY PEM' } },
      'a CA or client file alone implies TLS',
    );
  });

  test('incomplete or contradictory settings are refused, every problem named at once', () => {
    assert.equal(problemsOf({ kafkaSaslMechanism: 'plain' }).length, 2, 'no user, no password');
    assert.match(
      problemsOf({
        kafkaSaslMechanism: 'plain',
        kafkaSaslUsername: 'chat',
        kafkaSaslPassword: 'pw',
        kafkaSaslPasswordFile: '/run/secrets/kafka-password',
      }).join(),
      /not both/,
    );
    assert.match(problemsOf({ kafkaSaslUsername: 'chat' }).join(), /MECHANISM is none/);
    assert.match(problemsOf({ kafkaTlsCertFile: '/etc/kafka/client.pem' }).join(), /go together/);
    const missing = problemsOf({
      kafkaSaslMechanism: 'scram-sha-256',
      kafkaSaslUsername: 'chat',
      kafkaSaslPasswordFile: '/nowhere',
      kafkaTlsCaFile: '/nowhere-ca',
    });
    assert.deepEqual(
      missing.map((p) => p.split(':')[0]),
      ['CHAT_KAFKA_SASL_PASSWORD_FILE', 'CHAT_KAFKA_TLS_CA_FILE'],
    );
    assert.match(missing.join(), /ENOENT/);
  });

  test('the password never appears in the error', () => {
    const problems = problemsOf({
      kafkaSaslMechanism: 'plain',
      kafkaSaslPassword: 'hunter2-secret',
      kafkaSaslPasswordFile: '/run/secrets/kafka-password',
    });
    assert.doesNotMatch(problems.join(), /hunter2|from-the-file/);
  });
});

describe('kafkaRefusal', () => {
  class KafkaJSSASLAuthenticationError extends Error {
    override name = 'KafkaJSSASLAuthenticationError';
  }
  test('a refused login or a missing ACL, even wrapped, is a configuration error; an outage is not', () => {
    const login = kafkaRefusal(new KafkaJSSASLAuthenticationError('SASL PLAIN authentication failed'));
    assert.ok(isChatError(login, 'CONFIG_ERR_INVALID'));
    assert.equal(login.retryable, false);
    assert.match(login.message, /Kafka refused this client: SASL PLAIN authentication failed/);
    const acl = Object.assign(new Error('Not authorized to access topics'), {
      type: 'TOPIC_AUTHORIZATION_FAILED',
    });
    const wrapped = Object.assign(new Error('retries exceeded'), { originalError: acl });
    assert.ok(isChatError(kafkaRefusal(wrapped), 'CONFIG_ERR_INVALID'));
    assert.equal(kafkaRefusal(new Error('Connection error: ECONNREFUSED')), undefined);
    assert.equal(kafkaRefusal(Object.assign(new Error('x'), { type: 'LEADER_NOT_AVAILABLE' })), undefined);
    assert.equal(kafkaRefusal('not an error'), undefined);
  });
});
