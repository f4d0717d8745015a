// A MetricCard-like component for the render scenario, used when views/ does
// not (yet) export one. Same shape as a dashboard card: title, value, unit,
// a bar, and a few details.

export interface CardProps {
  id: string
  title: string
  value: number
  unit: string
  max: number
  details: Array<[string, string]>
}

export function LocalMetricCard (props: CardProps): JSX.Element {
  const pct = Math.max(0, Math.min(100, (props.value / props.max) * 100))
  return (
    <section id={props.id} class='metric-card' hx-swap-oob='true'>
      <header class='metric-card__title' safe>{props.title}</header>
      <div class='metric-card__value'>
        <span class='metric-card__number' safe>{props.value.toFixed(1)}</span>
        <span class='metric-card__unit' safe>{props.unit}</span>
      </div>
      <div class='metric-card__bar' role='progressbar' aria-valuenow={pct.toFixed(0)} aria-valuemin='0' aria-valuemax='100'>
        <div class='metric-card__fill' style={`width:${pct.toFixed(1)}%`} />
      </div>
      <dl class='metric-card__details'>
        {props.details.map(([k, v]) => (
          <>
            <dt safe>{k}</dt>
            <dd safe>{v}</dd>
          </>
        ))}
      </dl>
    </section>
  )
}
