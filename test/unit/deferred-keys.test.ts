/**
 * Which keys a logical restore builds after the rows (activities/restore/deferred-keys.ts): plain KEYs of InnoDB
 * tables only; PRIMARY, UNIQUE, FULLTEXT, SPATIAL and a KEY a FOREIGN KEY uses stay in the CREATE TABLE, so the
 * restored schema is exactly the dump's. The statements are as SHOW CREATE TABLE (mariadb-dump) writes them.
 */
import { addKeysStatement, deferSecondaryKeys } from '../../activities/restore/deferred-keys';

const create = (lines: string[], engine = 'InnoDB') =>
  `CREATE TABLE \`t\` (\n${lines.join(',\n')}\n) ENGINE=${engine} DEFAULT CHARSET=utf8mb4;\n`;

describe('deferSecondaryKeys', () => {
  test('plain keys leave the CREATE TABLE and come back in one ALTER TABLE; the comma before ) is dropped', () => {
    const split = deferSecondaryKeys(
      create([
        '  `id` int(11) NOT NULL',
        '  `email` varchar(120) NOT NULL',
        '  `name` varchar(80) DEFAULT NULL',
        '  PRIMARY KEY (`id`)',
        '  KEY `email` (`email`)',
        "  KEY `name_email` (`name`(10),`email`) COMMENT 'lookup (by name)'",
      ]),
    )!;
    expect(split.create).toBe(
      create([
        '  `id` int(11) NOT NULL',
        '  `email` varchar(120) NOT NULL',
        '  `name` varchar(80) DEFAULT NULL',
        '  PRIMARY KEY (`id`)',
      ]),
    );
    expect(split.keys).toEqual([
      'KEY `email` (`email`)',
      "KEY `name_email` (`name`(10),`email`) COMMENT 'lookup (by name)'",
    ]);
    expect(addKeysStatement(split)).toBe(
      'ALTER TABLE `t` ADD KEY `email` (`email`), ' +
        "ADD KEY `name_email` (`name`(10),`email`) COMMENT 'lookup (by name)';\n",
    );
  });

  test('PRIMARY, UNIQUE, FULLTEXT and SPATIAL keys stay; constraints and checks stay', () => {
    const lines = [
      '  `id` int(11) NOT NULL',
      '  `body` text NOT NULL',
      '  `at` point NOT NULL',
      '  `code` char(8) NOT NULL',
      '  PRIMARY KEY (`id`)',
      '  UNIQUE KEY `code` (`code`)',
      '  FULLTEXT KEY `body` (`body`)',
      '  SPATIAL KEY `at` (`at`)',
      '  CONSTRAINT `code_upper` CHECK (`code` = ucase(`code`))',
    ];
    const split = deferSecondaryKeys(create(lines))!;
    expect(split.keys).toEqual([]);
    expect(split.create).toBe(create(lines));
  });

  test('a KEY a FOREIGN KEY can use stays (InnoDB would add its own index); one it cannot use is deferred', () => {
    const lines = [
      '  `id` int(11) NOT NULL',
      '  `order_id` int(11) NOT NULL',
      '  `sku` varchar(32) NOT NULL',
      '  PRIMARY KEY (`id`)',
      '  KEY `order_sku` (`order_id`,`sku`)',
      '  KEY `sku_order` (`sku`,`order_id`)',
      '  CONSTRAINT `items_order` FOREIGN KEY (`order_id`) REFERENCES `orders` (`id`) ON DELETE CASCADE',
    ];
    const split = deferSecondaryKeys(create(lines))!;
    expect(split.keys).toEqual(['KEY `sku_order` (`sku`,`order_id`)']);
    expect(split.create).toBe(create(lines.filter((l) => !l.includes('sku_order'))));
  });

  test('names with backquotes, parentheses and commas are read as names', () => {
    const split = deferSecondaryKeys(
      create([
        '  `a``b` int(11) NOT NULL',
        '  `c (d), e` int(11) NOT NULL',
        '  PRIMARY KEY (`a``b`)',
        '  KEY `k (x), ``y``` (`c (d), e`,`a``b`)',
        '  CONSTRAINT `fk (1)` FOREIGN KEY (`a``b`) REFERENCES `p` (`id`)',
      ]),
    )!;
    expect(split.table).toBe('`t`');
    expect(split.keys).toEqual(['KEY `k (x), ``y``` (`c (d), e`,`a``b`)']);
  });

  test('other engines and statements this parser does not know are left as they are', () => {
    const myisam = create(['  `id` int(11) NOT NULL', '  KEY `id` (`id`)'], 'MyISAM');
    expect(deferSecondaryKeys(myisam)).toEqual({ create: myisam, table: '`t`', keys: [] });
    expect(deferSecondaryKeys('CREATE TABLE `t` (`id` int) ENGINE=InnoDB;\n')).toBeNull();
    const unbalanced = create(['  `id` int(11) NOT NULL', '  KEY `k` (`id`']);
    expect(deferSecondaryKeys(unbalanced)).toEqual({ create: unbalanced, table: '`t`', keys: [] });
  });

  test('a partitioned table keeps its partition clause after the closing line', () => {
    const statement =
      'CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL,\n' +
      '  PRIMARY KEY (`id`),\n  KEY `k` (`k`)\n' +
      ') ENGINE=InnoDB DEFAULT CHARSET=latin1\n PARTITION BY HASH (`id`)\nPARTITIONS 4;\n';
    const split = deferSecondaryKeys(statement)!;
    expect(split.create).toBe(
      'CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n' +
        ') ENGINE=InnoDB DEFAULT CHARSET=latin1\n PARTITION BY HASH (`id`)\nPARTITIONS 4;\n',
    );
    expect(split.keys).toEqual(['KEY `k` (`k`)']);
  });
});
