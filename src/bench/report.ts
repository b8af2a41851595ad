/** Writes a run's report: `results.json`, one SVG chart per operation, the table as Markdown. */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { OPERATIONS, type BenchResults } from './results.js'
import { renderChart } from './svg-chart.js'
import { formatTable } from './table.js'

/** The files {@link writeReport} wrote, by role. */
export interface ReportFiles {
  readonly results: string
  readonly table: string
  /** `<operation>.svg` for each operation that has a measurement. */
  readonly charts: readonly string[]
}

/** Writes the report of `results` into `dir` (created if missing) and returns the paths. */
export async function writeReport(results: BenchResults, dir: string): Promise<ReportFiles> {
  await mkdir(dir, { recursive: true })
  const resultsPath = join(dir, 'results.json')
  await writeFile(resultsPath, JSON.stringify(results, null, 1) + '\n')
  const tablePath = join(dir, 'table.md')
  await writeFile(tablePath, formatTable(results.summary))
  const charts: string[] = []
  for (const operation of OPERATIONS) {
    if (!results.summary.some((r) => r.operation === operation)) continue
    const path = join(dir, `${operation}.svg`)
    await writeFile(path, renderChart(operation, results.summary))
    charts.push(path)
  }
  return { results: resultsPath, table: tablePath, charts }
}
