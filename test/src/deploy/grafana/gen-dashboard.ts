// `pnpm docs:gen` (last step): writes deploy/grafana/dashboards/*.json from typed code (issue 14; in progress).
console.log('dashboards: not generated yet');
export {};
